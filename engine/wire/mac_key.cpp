#include "engine/wire/mac_key.hpp"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include <cerrno>
#include <cstring>

#include "platform/os/last_error.hpp"

namespace cf::wire {

MacKey::~MacKey() { close(); }

int MacKey::open(const std::uint8_t (&key)[kMacKeyBytes]) noexcept {
    gnutls_hmac_hd_t handle = nullptr;
    const int status = gnutls_hmac_init(&handle, GNUTLS_MAC_SHA256, key, kMacKeyBytes);
    if (status < 0) {
        return platform::fail(status == GNUTLS_E_MEMORY_ERROR ? ENOMEM : EIO, "HMAC-SHA-256 key: %s",
                              gnutls_strerror(status));
    }
    close();
    handle_ = handle;
    return 0;
}

void MacKey::close() noexcept {
    if (handle_ == nullptr) return;
    gnutls_hmac_deinit(static_cast<gnutls_hmac_hd_t>(handle_), nullptr);
    handle_ = nullptr;
}

void MacKey::tag(const Piece* pieces, std::size_t count, std::uint8_t (&out)[kMacTagBytes]) noexcept {
    auto* handle = static_cast<gnutls_hmac_hd_t>(handle_);
    for (std::size_t i = 0; i < count; ++i) {
        // Cannot fail for an initialised SHA-256 handle (only a NULL handle or algorithm is refused).
        if (pieces[i].size != 0) (void)gnutls_hmac(handle, pieces[i].data, pieces[i].size);
    }
    std::uint8_t digest[32];
    gnutls_hmac_output(handle, digest);   // also resets the state to the keyed one
    std::memcpy(out, digest, kMacTagBytes);
}

bool tags_equal(const std::uint8_t* a, const std::uint8_t* b) noexcept {
    return gnutls_memcmp(a, b, kMacTagBytes) == 0;
}

}  // namespace cf::wire
