/*
 * Force-included (-include) into every libsrtp 2.5 source file: the 2.x functions whose
 * names libsrtp 3 kept with another signature are compiled as srtp2_*, so that
 * srtp3_compat.c can define the 3.x ones under the original names.
 */
#ifndef MEDIASOUP_BUILD_KIT_SRTP2_RENAMES_H
#define MEDIASOUP_BUILD_KIT_SRTP2_RENAMES_H
#define srtp_create srtp2_create
#define srtp_protect srtp2_protect
#define srtp_unprotect srtp2_unprotect
#define srtp_protect_rtcp srtp2_protect_rtcp
#define srtp_unprotect_rtcp srtp2_unprotect_rtcp
#define srtp_profile_get_master_key_length srtp2_profile_get_master_key_length
#define srtp_profile_get_master_salt_length srtp2_profile_get_master_salt_length
#endif
