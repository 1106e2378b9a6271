#include "engine/quic/initial_secrets.hpp"

#include <cerrno>

#include "engine/quic/hkdf_label.hpp"
#include "platform/os/last_error.hpp"

namespace cf::quic {

InitialSecrets::~InitialSecrets() {
    wipe_secret(client, sizeof(client));
    wipe_secret(server, sizeof(server));
}

int derive_initial_secrets(const std::uint8_t* dcid, std::size_t dcid_len, InitialSecrets& secrets) noexcept {
    if (dcid_len > kMaxConnectionIdBytes) {
        return platform::fail(EINVAL, "QUIC Initial secrets: a connection ID of %zu bytes (at most %zu)", dcid_len,
                              kMaxConnectionIdBytes);
    }
    std::uint8_t initial_secret[kInitialSecretBytes];
    int status = hkdf_extract(HkdfHash::sha256, kQuicV1InitialSalt, sizeof(kQuicV1InitialSalt), dcid, dcid_len,
                              initial_secret);
    HkdfLabelExpander expander;   // both secrets from one keying
    if (status == 0) status = expander.init(HkdfHash::sha256, initial_secret, sizeof(initial_secret));
    if (status == 0) status = expander.expand("client in", 9, nullptr, 0, secrets.client, kInitialSecretBytes);
    if (status == 0) status = expander.expand("server in", 9, nullptr, 0, secrets.server, kInitialSecretBytes);
    wipe_secret(initial_secret, sizeof(initial_secret));
    return status;
}

}  // namespace cf::quic
