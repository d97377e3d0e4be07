/*
 * The libsrtp 3 API used by the mediasoup worker, on top of libsrtp 2.5.
 *
 * This file sees only the 2.x header: the 2.x functions renamed by srtp2_renames.h are
 * reached as srtp2_*, and the 3.x ones are defined here under their own names with the
 * signatures of include/srtp.h. The two headers describe the same ABI for every type
 * that crosses between them; the static asserts below hold them to it.
 *
 * 2.x works in place and takes `int` lengths; 3.x reads from one buffer, writes to
 * another and takes `size_t` lengths plus the output capacity. Every conversion is
 * checked: a packet that does not fit is refused, never truncated or overflowed, and, as
 * in 3.x, the capacity needed is the exact output length (the packet plus the stream's
 * tag, plus the SRTCP index), checked before any state changes.
 */
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <openssl/crypto.h>

#include "srtp.h"      /* libsrtp 2.5, from libsrtp2/include */
#include "srtp_priv.h" /* 2.5's stream lookup: the exact room a packet needs */

#undef srtp_create
#undef srtp_protect
#undef srtp_unprotect
#undef srtp_protect_rtcp
#undef srtp_unprotect_rtcp
#undef srtp_profile_get_master_key_length
#undef srtp_profile_get_master_salt_length

/* 3.x status codes that 2.x does not have (values of include/srtp.h). */
#define KIT_SRTP_ERR_STATUS_BUFFER_SMALL ((srtp_err_status_t)28)

/* Trailer room: 2.x tag + MKI, plus the 32-bit SRTCP index (include/srtp.h agrees). */
#define KIT_SRTP_MAX_TRAILER_LEN (SRTP_MAX_TRAILER_LEN + 4)

_Static_assert(KIT_SRTP_MAX_TRAILER_LEN == 16 + 128 + 4, "include/srtp.h SRTP_MAX_TRAILER_LEN");
_Static_assert(srtp_err_status_pkt_idx_adv == 27, "2.x status codes moved");
_Static_assert(ssrc_any_outbound == 3, "2.x ssrc types moved");
_Static_assert(srtp_profile_aead_aes_256_gcm == 8, "2.x profiles moved");
_Static_assert(event_packet_index_limit == 3, "2.x events moved");
_Static_assert(sizeof(srtp_ssrc_t) == 2 * sizeof(int), "2.x srtp_ssrc_t layout");

struct srtp_kit_policy {
    srtp_policy_t v2;
    unsigned char key[SRTP_MAX_KEY_LEN];
    size_t key_len;
    size_t salt_len;
    srtp_profile_t profile;
    bool has_profile;
    bool has_key;
};

srtp_err_status_t srtp_policy_create(struct srtp_kit_policy **policy)
{
    struct srtp_kit_policy *p;

    if (policy == NULL)
        return srtp_err_status_bad_param;
    p = calloc(1, sizeof(*p));
    if (p == NULL)
        return srtp_err_status_alloc_fail;
    /* 2.x defaults: 128-packet replay window, no repeated transmissions. */
    p->v2.window_size = 128;
    p->v2.ssrc.type = ssrc_undefined;
    *policy = p;
    return srtp_err_status_ok;
}

void srtp_policy_destroy(struct srtp_kit_policy *policy)
{
    if (policy != NULL) {
        /* A plain memset before free may be optimised away: the master key would stay
         * in freed memory. */
        OPENSSL_cleanse(policy->key, sizeof(policy->key));
        free(policy);
    }
}

srtp_err_status_t srtp_policy_set_ssrc(struct srtp_kit_policy *policy, srtp_ssrc_t ssrc)
{
    if (policy == NULL)
        return srtp_err_status_bad_param;
    policy->v2.ssrc = ssrc;
    return srtp_err_status_ok;
}

srtp_err_status_t srtp_policy_set_profile(struct srtp_kit_policy *policy, srtp_profile_t profile)
{
    srtp_err_status_t status;

    if (policy == NULL)
        return srtp_err_status_bad_param;
    status = srtp_crypto_policy_set_from_profile_for_rtp(&policy->v2.rtp, profile);
    if (status != srtp_err_status_ok)
        return status;
    status = srtp_crypto_policy_set_from_profile_for_rtcp(&policy->v2.rtcp, profile);
    if (status != srtp_err_status_ok)
        return status;
    policy->profile = profile;
    policy->has_profile = true;
    return srtp_err_status_ok;
}

size_t srtp_profile_get_master_key_length(srtp_profile_t profile)
{
    return srtp2_profile_get_master_key_length(profile);
}

size_t srtp_profile_get_master_salt_length(srtp_profile_t profile)
{
    return srtp2_profile_get_master_salt_length(profile);
}

srtp_err_status_t srtp_policy_add_key(struct srtp_kit_policy *policy,
                                      const uint8_t *key,
                                      size_t key_len,
                                      const uint8_t *salt,
                                      size_t salt_len,
                                      const uint8_t *mki,
                                      size_t mki_len)
{
    (void)mki;
    /* One master key, no MKI: all the worker asks for, and all this shim supports. */
    if (policy == NULL || key == NULL || salt == NULL || mki_len != 0 || policy->has_key)
        return srtp_err_status_bad_param;
    /* 2.x reads key || salt with the lengths the profile implies: they must match. */
    if (!policy->has_profile ||
        key_len != srtp_profile_get_master_key_length(policy->profile) ||
        salt_len != srtp_profile_get_master_salt_length(policy->profile))
        return srtp_err_status_bad_param;
    if (key_len > sizeof(policy->key) || salt_len > sizeof(policy->key) - key_len)
        return srtp_err_status_bad_param;
    memcpy(policy->key, key, key_len);
    memcpy(policy->key + key_len, salt, salt_len);
    policy->key_len = key_len;
    policy->salt_len = salt_len;
    policy->v2.key = policy->key;
    policy->has_key = true;
    return srtp_err_status_ok;
}

srtp_err_status_t srtp_policy_set_window_size(struct srtp_kit_policy *policy, size_t window_size)
{
    if (policy == NULL || window_size > ULONG_MAX)
        return srtp_err_status_bad_param;
    policy->v2.window_size = (unsigned long)window_size;
    return srtp_err_status_ok;
}

srtp_err_status_t srtp_policy_set_allow_repeat_tx(struct srtp_kit_policy *policy, bool allow)
{
    if (policy == NULL)
        return srtp_err_status_bad_param;
    policy->v2.allow_repeat_tx = allow ? 1 : 0;
    return srtp_err_status_ok;
}

srtp_err_status_t srtp_create(srtp_t *session, const struct srtp_kit_policy *policy)
{
    if (session == NULL || policy == NULL || !policy->has_profile || !policy->has_key)
        return srtp_err_status_bad_param;
    /* The profile may have changed since add_key: 2.x would read past the key or use
     * a short one. */
    if (policy->key_len != srtp_profile_get_master_key_length(policy->profile) ||
        policy->salt_len != srtp_profile_get_master_salt_length(policy->profile))
        return srtp_err_status_bad_param;
    /* 2.x copies the key material: the policy may be destroyed right after. */
    return srtp2_create(session, &policy->v2);
}

srtp_err_status_t srtp_stream_remove(srtp_t session, unsigned int ssrc)
{
    /* 3.x takes the SSRC in host byte order and converts it; 2.x's srtp_remove_stream
     * wants network order. The worker passes htonl(ssrc), so with 3.x (and here) it finds
     * no stream on little-endian hosts: behave exactly as 3.x, or one authenticated packet
     * from an unknown address would reset a stream's replay window and rollover counter. */
    return srtp_remove_stream(session, htonl(ssrc));
}

/* The SSRC of an RTP (offset 8) or RTCP (offset 4) packet, in network byte order as 2.x
 * keys its streams. */
static bool kit_ssrc(const uint8_t *packet, size_t len, bool rtcp, uint32_t *ssrc)
{
    size_t offset = rtcp ? 4 : 8;

    if (packet == NULL || len < offset + 4)
        return false;
    memcpy(ssrc, packet + offset, sizeof(*ssrc));
    return true;
}

/* What 2.x appends to a packet of this SSRC: the tag of the stream it will use (its own,
 * or the template a new stream is cloned from), plus the SRTCP index. No MKI (add_key
 * accepts none). 0 when there is no stream: 2.x then refuses the packet itself. */
static size_t kit_trailer_len(srtp_t ctx, uint32_t ssrc, bool rtcp)
{
    const srtp_stream_ctx_t *stream = srtp_get_stream(ctx, ssrc);
    const srtp_session_keys_t *keys;

    if (stream == NULL)
        stream = ctx->stream_template;
    if (stream == NULL || stream->session_keys == NULL)
        return 0;
    keys = &stream->session_keys[0];
    if (rtcp)
        return (size_t)srtp_auth_get_tag_length(keys->rtcp_auth) + sizeof(srtcp_trailer_t);
    return (size_t)srtp_auth_get_tag_length(keys->rtp_auth);
}

typedef srtp_err_status_t (*kit_srtp2_fn)(srtp_t, void *, int *);

/* Runs one in-place 2.x operation on `buf`, which holds `in_len` bytes and has room for
 * the result. */
static srtp_err_status_t kit_run(kit_srtp2_fn fn, srtp_t ctx, uint8_t *buf, size_t in_len,
                                 size_t room, size_t *out_len)
{
    int len = (int)in_len;
    srtp_err_status_t status = fn(ctx, buf, &len);

    if (status != srtp_err_status_ok)
        return status;
    if (len < 0 || (size_t)len > room)
        return srtp_err_status_fail;
    *out_len = (size_t)len;
    return srtp_err_status_ok;
}

static srtp_err_status_t kit_protect(kit_srtp2_fn fn, bool rtcp, srtp_t ctx, const uint8_t *in,
                                     size_t in_len, uint8_t *out, size_t *out_len,
                                     size_t mki_index)
{
    uint32_t ssrc;
    size_t trailer;
    size_t needed;

    if (ctx == NULL || in == NULL || out == NULL || out_len == NULL)
        return srtp_err_status_bad_param;
    if (mki_index != 0)
        return srtp_err_status_bad_mki;
    if (!kit_ssrc(in, in_len, rtcp, &ssrc))
        return srtp_err_status_bad_param;
    trailer = kit_trailer_len(ctx, ssrc, rtcp);
    if (trailer == 0)
        return srtp_err_status_no_ctx;
    if (in_len > (size_t)INT_MAX - trailer)
        return srtp_err_status_bad_param;
    needed = in_len + trailer;
    /* Checked before 2.x runs: a refused packet spends no index and leaves `out` as is. */
    if (*out_len < needed)
        return KIT_SRTP_ERR_STATUS_BUFFER_SMALL;
    if (out != in)
        memmove(out, in, in_len);
    return kit_run(fn, ctx, out, in_len, needed, out_len);
}

static srtp_err_status_t kit_unprotect(kit_srtp2_fn fn, bool rtcp, srtp_t ctx,
                                       const uint8_t *in, size_t in_len, uint8_t *out,
                                       size_t *out_len)
{
    uint32_t ssrc;
    size_t trailer;
    size_t needed;
    uint8_t *scratch;
    srtp_err_status_t status;

    if (ctx == NULL || in == NULL || out == NULL || out_len == NULL || in_len > (size_t)INT_MAX)
        return srtp_err_status_bad_param;
    if (!kit_ssrc(in, in_len, rtcp, &ssrc))
        return srtp_err_status_bad_param;
    trailer = kit_trailer_len(ctx, ssrc, rtcp);
    if (trailer == 0)
        return srtp_err_status_no_ctx;
    if (in_len < trailer)
        return srtp_err_status_bad_param;
    needed = in_len - trailer;
    if (*out_len < needed)
        return KIT_SRTP_ERR_STATUS_BUFFER_SMALL;
    if (out == in || *out_len >= in_len) {
        if (out != in)
            memmove(out, in, in_len);
        return kit_run(fn, ctx, out, in_len, *out_len, out_len);
    }
    /* Room for the result but not for the packet 2.x decrypts in place (never the worker,
     * which decrypts in place): work on a copy. */
    scratch = malloc(in_len);
    if (scratch == NULL)
        return srtp_err_status_alloc_fail;
    memcpy(scratch, in, in_len);
    status = kit_run(fn, ctx, scratch, in_len, needed, out_len);
    if (status == srtp_err_status_ok)
        memcpy(out, scratch, *out_len);
    free(scratch);
    return status;
}

srtp_err_status_t srtp_protect(srtp_t ctx, const uint8_t *rtp, size_t rtp_len, uint8_t *srtp,
                               size_t *srtp_len, size_t mki_index)
{
    return kit_protect(srtp2_protect, false, ctx, rtp, rtp_len, srtp, srtp_len, mki_index);
}

srtp_err_status_t srtp_unprotect(srtp_t ctx, const uint8_t *srtp, size_t srtp_len, uint8_t *rtp,
                                 size_t *rtp_len)
{
    return kit_unprotect(srtp2_unprotect, false, ctx, srtp, srtp_len, rtp, rtp_len);
}

srtp_err_status_t srtp_protect_rtcp(srtp_t ctx, const uint8_t *rtcp, size_t rtcp_len,
                                    uint8_t *srtcp, size_t *srtcp_len, size_t mki_index)
{
    return kit_protect(srtp2_protect_rtcp, true, ctx, rtcp, rtcp_len, srtcp, srtcp_len, mki_index);
}

srtp_err_status_t srtp_unprotect_rtcp(srtp_t ctx, const uint8_t *srtcp, size_t srtcp_len,
                                      uint8_t *rtcp, size_t *rtcp_len)
{
    return kit_unprotect(srtp2_unprotect_rtcp, true, ctx, srtcp, srtcp_len, rtcp, rtcp_len);
}
