/*
 * Every BIO_ctrl() call of libssl comes here (mediasoup-build-kit/meson renames the symbol
 * in libssl.o), so that kernel TLS is never reported as active.
 *
 * Debian builds OpenSSL with kTLS. The mediasoup worker's DTLS transport puts a callback
 * on its outgoing memory BIO that returns 1 for every control it does not handle, so
 * `BIO_get_ktls_send()` reads 1, libssl believes the kernel frames the records, allocates
 * no write buffer, and the first DTLS record it writes crashes (NULL write in
 * do_dtls1_write). mediasoup's own OpenSSL build has no kTLS, so it never asks; neither
 * does a memory BIO need it.
 */
#include <openssl/bio.h>

long mediasoup_kit_ssl_BIO_ctrl(BIO *bio, int cmd, long larg, void *parg);

long mediasoup_kit_ssl_BIO_ctrl(BIO *bio, int cmd, long larg, void *parg)
{
    if (cmd == BIO_CTRL_GET_KTLS_SEND || cmd == BIO_CTRL_GET_KTLS_RECV)
        return 0;
    return BIO_ctrl(bio, cmd, larg, parg);
}
