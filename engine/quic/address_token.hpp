// Address validation tokens for Retry (RFC 9000 section 8.1.2): a server proves a client's address by sending it
// a token the client must echo in its next Initial. The token is sealed by the server alone (AES-128-GCM under a
// random key made when the issuer is opened, a random nonce per token), so it needs no per-client state:
//
//   token = nonce (12) | sealed { issue time (8), original DCID length (1), original DCID } | tag (16)
//
// and the associated data binds it to the client's address and port and to the connection ID the Retry gave the
// client (which its next Initial is sent to). check() accepts a token only from that address, for that connection
// ID, within the lifetime, and returns the original DCID the server needs for its transport parameters. Tokens
// are untrusted input like any datagram: a wrong length or tag is refused without a message on the per-packet
// path. Not thread-safe (one per endpoint thread); issue/check do not allocate.
#pragma once

#include <cstddef>
#include <cstdint>

#include "drivers/packet.hpp"
#include "engine/quic/connection_id.hpp"

namespace cf::quic {

class AddressTokenIssuer {
public:
    static constexpr std::size_t kMaxTokenBytes = 12 + 8 + 1 + kMaxConnectionIdBytes + 16;

    AddressTokenIssuer() noexcept = default;
    ~AddressTokenIssuer();
    AddressTokenIssuer(const AddressTokenIssuer&) = delete;
    AddressTokenIssuer& operator=(const AddressTokenIssuer&) = delete;

    // A fresh random key and its cipher handle (this allocates). 0, or -EIO with a message.
    int open(std::uint64_t lifetime_ns) noexcept;

    // A token for `client` at `now_ns`, bound to `retry_scid`: its size, or -ENOBUFS / -EIO.
    int issue(const drivers::PeerAddress& client, const ConnectionId& original_dcid, const ConnectionId& retry_scid,
              std::uint64_t now_ns, std::uint8_t* out, std::size_t capacity) noexcept;
    // 0 and the original DCID if the token is ours, from `client`, for `dcid`, and not expired; else -EBADMSG
    // (forged, altered, another address or connection ID) or -ETIMEDOUT.
    int check(const std::uint8_t* token, std::size_t size, const drivers::PeerAddress& client,
              const ConnectionId& dcid, std::uint64_t now_ns, ConnectionId& original_dcid) noexcept;

private:
    void* cipher_ = nullptr;   // gnutls_aead_cipher_hd_t
    std::uint64_t lifetime_ns_ = 0;
};

}  // namespace cf::quic
