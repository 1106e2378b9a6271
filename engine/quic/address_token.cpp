#include "engine/quic/address_token.hpp"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include <cerrno>
#include <cstring>

#include "platform/os/last_error.hpp"

namespace cf::quic {
namespace {

constexpr std::size_t kNonceBytes = 12;
constexpr std::size_t kTagBytes = 16;
constexpr std::size_t kMaxAssociatedBytes = 2 + 2 + 16 + 1 + kMaxConnectionIdBytes;

gnutls_aead_cipher_hd_t handle(void* cipher) { return static_cast<gnutls_aead_cipher_hd_t>(cipher); }

// The client's address family, port and address, then the connection ID the token is bound to.
std::size_t associated_data(const drivers::PeerAddress& client, const ConnectionId& dcid, std::uint8_t* out) {
    std::size_t at = 0;
    const auto family = static_cast<std::uint16_t>(client.addr.any.sa_family);
    std::memcpy(out + at, &family, 2);
    at += 2;
    const std::uint16_t port = client.port();
    std::memcpy(out + at, &port, 2);
    at += 2;
    std::memset(out + at, 0, 16);
    if (client.addr.any.sa_family == AF_INET) std::memcpy(out + at, &client.addr.v4.sin_addr, 4);
    if (client.addr.any.sa_family == AF_INET6) std::memcpy(out + at, &client.addr.v6.sin6_addr, 16);
    at += 16;
    out[at++] = static_cast<std::uint8_t>(dcid.size());
    std::memcpy(out + at, dcid.data(), dcid.size());
    return at + dcid.size();
}

}  // namespace

AddressTokenIssuer::~AddressTokenIssuer() {
    if (cipher_ != nullptr) gnutls_aead_cipher_deinit(handle(cipher_));
}

int AddressTokenIssuer::open(std::uint64_t lifetime_ns) noexcept {
    std::uint8_t key_bytes[16];
    if (gnutls_rnd(GNUTLS_RND_KEY, key_bytes, sizeof key_bytes) != 0) {
        return platform::fail(EIO, "QUIC: no random bytes for the address token key");
    }
    gnutls_datum_t key{key_bytes, sizeof key_bytes};
    gnutls_aead_cipher_hd_t cipher = nullptr;
    const int rc = gnutls_aead_cipher_init(&cipher, GNUTLS_CIPHER_AES_128_GCM, &key);
    std::memset(key_bytes, 0, sizeof key_bytes);
    if (rc < 0) return platform::fail(EIO, "QUIC: address token cipher: %s", gnutls_strerror(rc));
    if (cipher_ != nullptr) gnutls_aead_cipher_deinit(handle(cipher_));
    cipher_ = cipher;
    lifetime_ns_ = lifetime_ns;
    return 0;
}

int AddressTokenIssuer::issue(const drivers::PeerAddress& client, const ConnectionId& original_dcid,
                              const ConnectionId& retry_scid, std::uint64_t now_ns, std::uint8_t* out,
                              std::size_t capacity) noexcept {
    std::uint8_t plain[8 + 1 + kMaxConnectionIdBytes];
    std::memcpy(plain, &now_ns, 8);
    plain[8] = static_cast<std::uint8_t>(original_dcid.size());
    std::memcpy(plain + 9, original_dcid.data(), original_dcid.size());
    const std::size_t plain_size = 9 + original_dcid.size();
    if (cipher_ == nullptr || capacity < kNonceBytes + plain_size + kTagBytes) return -ENOBUFS;
    if (gnutls_rnd(GNUTLS_RND_NONCE, out, kNonceBytes) != 0) return -EIO;
    std::uint8_t ad[kMaxAssociatedBytes];
    const std::size_t ad_size = associated_data(client, retry_scid, ad);
    std::size_t sealed = capacity - kNonceBytes;
    if (gnutls_aead_cipher_encrypt(handle(cipher_), out, kNonceBytes, ad, ad_size, kTagBytes, plain, plain_size,
                                   out + kNonceBytes, &sealed) < 0) {
        return -EIO;
    }
    return static_cast<int>(kNonceBytes + sealed);
}

int AddressTokenIssuer::check(const std::uint8_t* token, std::size_t size, const drivers::PeerAddress& client,
                              const ConnectionId& dcid, std::uint64_t now_ns, ConnectionId& original_dcid) noexcept {
    if (cipher_ == nullptr || size < kNonceBytes + 9 + kTagBytes || size > kMaxTokenBytes) return -EBADMSG;
    std::uint8_t ad[kMaxAssociatedBytes];
    const std::size_t ad_size = associated_data(client, dcid, ad);
    std::uint8_t plain[8 + 1 + kMaxConnectionIdBytes + kTagBytes];
    std::size_t plain_size = sizeof plain;
    if (gnutls_aead_cipher_decrypt(handle(cipher_), token, kNonceBytes, ad, ad_size, kTagBytes, token + kNonceBytes,
                                   size - kNonceBytes, plain, &plain_size) < 0 ||
        plain_size < 9 || plain_size != 9 + std::size_t{plain[8]}) {
        return -EBADMSG;
    }
    std::uint64_t issued = 0;
    std::memcpy(&issued, plain, 8);
    if (now_ns < issued || now_ns - issued > lifetime_ns_) return -ETIMEDOUT;
    if (!original_dcid.assign(plain + 9, plain[8])) return -EBADMSG;
    return 0;
}

}  // namespace cf::quic
