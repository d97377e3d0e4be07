/*
 * The part of the libsrtp 3 API that the mediasoup worker (mediasoup-sys 0.24.0) uses,
 * implemented by srtp3_compat.c on top of libsrtp 2.5 (see mediasoup-build-kit/README.md).
 *
 * Values of every enum are those of libsrtp 2.x (3.x kept them and appended two status
 * codes); srtp3_compat.c checks this at compile time.
 */
#ifndef MEDIASOUP_BUILD_KIT_SRTP3_H
#define MEDIASOUP_BUILD_KIT_SRTP3_H

#include <stddef.h>
#include <stdint.h>
#ifndef __cplusplus
#include <stdbool.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* The longest authentication tag of any profile (AEAD GCM: 16 bytes). */
#define SRTP_MAX_TAG_LEN 16

/* Room the caller must leave after an RTP or RTCP packet for srtp_protect(_rtcp):
 * 2.x tag (16) + MKI (128) + the SRTCP index (4). */
#define SRTP_MAX_TRAILER_LEN (16 + 128 + 4)

typedef enum {
    srtp_err_status_ok = 0,
    srtp_err_status_fail = 1,
    srtp_err_status_bad_param = 2,
    srtp_err_status_alloc_fail = 3,
    srtp_err_status_dealloc_fail = 4,
    srtp_err_status_init_fail = 5,
    srtp_err_status_terminus = 6,
    srtp_err_status_auth_fail = 7,
    srtp_err_status_cipher_fail = 8,
    srtp_err_status_replay_fail = 9,
    srtp_err_status_replay_old = 10,
    srtp_err_status_algo_fail = 11,
    srtp_err_status_no_such_op = 12,
    srtp_err_status_no_ctx = 13,
    srtp_err_status_cant_check = 14,
    srtp_err_status_key_expired = 15,
    srtp_err_status_socket_err = 16,
    srtp_err_status_signal_err = 17,
    srtp_err_status_nonce_bad = 18,
    srtp_err_status_read_fail = 19,
    srtp_err_status_write_fail = 20,
    srtp_err_status_parse_err = 21,
    srtp_err_status_encode_err = 22,
    srtp_err_status_semaphore_err = 23,
    srtp_err_status_pfkey_err = 24,
    srtp_err_status_bad_mki = 25,
    srtp_err_status_pkt_idx_old = 26,
    srtp_err_status_pkt_idx_adv = 27,
    srtp_err_status_buffer_small = 28,
    srtp_err_status_cryptex_err = 29
} srtp_err_status_t;

typedef struct srtp_ctx_t_ srtp_ctx_t;
typedef srtp_ctx_t *srtp_t;

/* Opaque: built with srtp_policy_create() and the setters below. */
typedef struct srtp_kit_policy *srtp_policy_t;

typedef enum {
    ssrc_undefined = 0,
    ssrc_specific = 1,
    ssrc_any_inbound = 2,
    ssrc_any_outbound = 3
} srtp_ssrc_type_t;

typedef struct {
    srtp_ssrc_type_t type;
    unsigned int value;
} srtp_ssrc_t;

typedef enum {
    srtp_profile_reserved = 0,
    srtp_profile_aes128_cm_sha1_80 = 1,
    srtp_profile_aes128_cm_sha1_32 = 2,
    srtp_profile_null_sha1_80 = 5,
    srtp_profile_null_sha1_32 = 6,
    srtp_profile_aead_aes_128_gcm = 7,
    srtp_profile_aead_aes_256_gcm = 8
} srtp_profile_t;

typedef enum {
    event_ssrc_collision,
    event_key_soft_limit,
    event_key_hard_limit,
    event_packet_index_limit
} srtp_event_t;

typedef struct srtp_event_data_t {
    srtp_t session;
    uint32_t ssrc;
    srtp_event_t event;
} srtp_event_data_t;

typedef void(srtp_event_handler_func_t)(srtp_event_data_t *data);

/* Same signature in 2.x: served by libsrtp 2.5 directly. */
srtp_err_status_t srtp_init(void);
srtp_err_status_t srtp_shutdown(void);
srtp_err_status_t srtp_install_event_handler(srtp_event_handler_func_t func);
const char *srtp_get_version_string(void);
srtp_err_status_t srtp_dealloc(srtp_t session);

/* 3.x only, or a 3.x signature: implemented in srtp3_compat.c. */
/* 2.x's srtp_remove_stream renamed; `ssrc` in network byte order in both. */
srtp_err_status_t srtp_stream_remove(srtp_t session, unsigned int ssrc);
srtp_err_status_t srtp_policy_create(srtp_policy_t *policy);
void srtp_policy_destroy(srtp_policy_t policy);
srtp_err_status_t srtp_policy_set_ssrc(srtp_policy_t policy, srtp_ssrc_t ssrc);
srtp_err_status_t srtp_policy_set_profile(srtp_policy_t policy, srtp_profile_t profile);
srtp_err_status_t srtp_policy_add_key(srtp_policy_t policy,
                                      const uint8_t *key,
                                      size_t key_len,
                                      const uint8_t *salt,
                                      size_t salt_len,
                                      const uint8_t *mki,
                                      size_t mki_len);
srtp_err_status_t srtp_policy_set_window_size(srtp_policy_t policy, size_t window_size);
srtp_err_status_t srtp_policy_set_allow_repeat_tx(srtp_policy_t policy, bool allow);
size_t srtp_profile_get_master_key_length(srtp_profile_t profile);
size_t srtp_profile_get_master_salt_length(srtp_profile_t profile);
srtp_err_status_t srtp_create(srtp_t *session, const srtp_policy_t policy);

/* In 3.x the packet is read from one buffer and written to another (they may be the
 * same); on input *out_len is the capacity of the output buffer, on output its length. */
srtp_err_status_t srtp_protect(srtp_t ctx, const uint8_t *rtp, size_t rtp_len,
                               uint8_t *srtp, size_t *srtp_len, size_t mki_index);
srtp_err_status_t srtp_unprotect(srtp_t ctx, const uint8_t *srtp, size_t srtp_len,
                                 uint8_t *rtp, size_t *rtp_len);
srtp_err_status_t srtp_protect_rtcp(srtp_t ctx, const uint8_t *rtcp, size_t rtcp_len,
                                    uint8_t *srtcp, size_t *srtcp_len, size_t mki_index);
srtp_err_status_t srtp_unprotect_rtcp(srtp_t ctx, const uint8_t *srtcp, size_t srtcp_len,
                                      uint8_t *rtcp, size_t *rtcp_len);

#ifdef __cplusplus
}
#endif

#endif
