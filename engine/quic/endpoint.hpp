// A QUIC endpoint on a UDP driver (drivers/datagram_driver.hpp): the connections of one socket, run by the thread
// that polls it. poll() sends what the application queued, receives a burst, hands each datagram to the connection
// its Destination Connection ID names (a server makes a new connection for a client's first Initial), runs the
// connections' timers and sends what they have due, each datagram written straight into a driver buffer and sent
// in bursts.
//
// Connection IDs are 8 random bytes from GnuTLS's generator, drawn when a connection is made and when it issues more
// (not per packet).
// Connections are kept in a fixed table of max_connections slots, looked up by comparing IDs (a handful per
// thread is the use: a hashed table, keyed against peers who choose IDs, comes with more connections). A datagram
// routes to a connection by any of its active IDs: up to LocalConnectionIds::kCapacity (4) each, plus a server's
// original DCID, so at most 5 * max_connections comparisons per datagram and nothing allocated; an ID the peer
// retired stops routing at once.
//
// Stateless reset (RFC 9000 section 10.3): each connection's tokens come from one StatelessResetKey (given in
// EndpointConfig::stateless_reset_key so that it survives a restart, else drawn at open). A short header datagram
// for no connection is first compared with the peer tokens of our connections (a reset for one of them drains
// it); otherwise it is answered with a stateless reset for the 8-byte DCID it names: one byte smaller than the
// datagram, at most 43 bytes (none under 22 bytes), random bits from GnuTLS, so two endpoints never reset each
// other in a loop. At most stateless_resets_per_second go out per second (a budget refilled each second);
// over it they are dropped and counted.
// A closed connection stays three probe timeouts (at least 100 ms; RFC 9000 section 10.2) so the peer's late
// packets find it, then its slot is freed.
//
// Batching: with udp.gso (and driver buffers of up to 64 KiB), a connection's full-size datagrams are written one
// after another into one buffer and sent with UDP_SEGMENT, up to 64 per buffer; with udp.gro a coalesced receive
// is cut back into its datagrams here.
//
// Untrusted input: datagrams for no connection are dropped and counted, except a server's first Initial in a
// datagram of at least 1200 bytes, which opens a connection while slots are free (with `retry`, only once it
// echoes a token from our Retry: address_token.hpp), and a datagram of that size in a version we do not speak,
// which is answered with Version Negotiation (section 6).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>

#include "drivers/datagram_driver.hpp"
#include "engine/quic/connection.hpp"

namespace cf::quic {

struct EndpointConfig {
    drivers::DriverKind driver = drivers::DriverKind::automatic;
    drivers::UdpConfig udp;              // bind address, buffers
    ConnectionConfig connection;         // the TLS context (its role is the endpoint's) and transport parameters
    std::uint32_t max_connections = 16;
    // Server: answer a client's first Initial with a Retry and take only Initials that echo a valid token
    // (address validation, RFC 9000 section 8.1.2); tokens live this long.
    bool retry = false;
    std::uint64_t retry_token_lifetime_ns = 10'000'000'000;
    // The static key of our stateless reset tokens: keep it (secret) across restarts so that peers of connections
    // lost in a restart are reset; none: a random one per open. 0 resets per second: never send one.
    std::optional<StatelessResetKey::Key> stateless_reset_key;
    std::uint32_t stateless_resets_per_second = 100;
};

struct EndpointStats {
    std::uint64_t datagrams_received = 0;
    std::uint64_t datagrams_sent = 0;
    std::uint64_t unmatched_datagrams = 0;     // for no connection (and not a new client's Initial)
    std::uint64_t connections_accepted = 0;
    std::uint64_t connections_refused = 0;     // no free slot, or the new connection could not be made
    std::uint64_t send_failures = 0;           // no driver buffer, or the driver's queue was full
    std::uint64_t retries_sent = 0;
    std::uint64_t invalid_tokens = 0;          // Initials whose token was forged, expired or from elsewhere
    std::uint64_t version_negotiations_sent = 0;
    std::uint64_t datagrams_coalesced = 0;     // GSO: datagrams that rode in another's buffer (udp.gso)
    std::uint64_t stateless_resets_sent = 0;
    std::uint64_t stateless_resets_received = 0;   // connections drained by their peer's reset
    std::uint64_t stateless_resets_suppressed = 0;   // not sent: over the per-second budget
};

class Endpoint {
public:
    static constexpr std::uint32_t kBurst = 32;

    // Opens the driver and checks the configuration. 0, or a negative errno with a message.
    static int open(const EndpointConfig& config, std::unique_ptr<Endpoint>& out) noexcept;
    ~Endpoint();
    Endpoint(const Endpoint&) = delete;
    Endpoint& operator=(const Endpoint&) = delete;

    // A client connection to `server`: 0 and `out` (owned by the endpoint until it is freed), or -EUSERS (no
    // slot), -EINVAL (a server endpoint), or a connection error. `connection` (a client's TLS context; it must
    // outlive the connection) replaces the endpoint's own ConnectionConfig: another server name, say.
    int connect(const drivers::PeerAddress& server, std::uint64_t now_ns, Connection*& out,
                const ConnectionConfig* connection = nullptr) noexcept;

    // One turn of the loop at `now_ns`: sends what the application queued since the last turn, receives a burst,
    // runs the timers, sends what is due. Returns how many datagrams moved (0: idle).
    int poll(std::uint64_t now_ns) noexcept;

    // The connections in use (closed ones included until their slot is freed), for i < capacity().
    std::uint32_t capacity() const noexcept { return capacity_; }
    Connection* connection(std::uint32_t i) const noexcept;
    std::uint32_t connections() const noexcept;

    const drivers::PeerAddress& local_address() const noexcept { return driver_->local_address(); }
    const EndpointStats& stats() const noexcept { return stats_; }
    const drivers::DatagramDriver& driver() const noexcept { return *driver_; }

private:
    struct Slot;
    Endpoint() noexcept = default;
    Slot* find(const std::uint8_t* datagram, std::size_t size) noexcept;
    Slot* free_slot() noexcept;
    void receive(drivers::PacketBuffer& datagram, std::uint64_t now_ns) noexcept;
    void accept(drivers::PacketBuffer& buffer, std::uint64_t now_ns) noexcept;
    std::uint32_t coalesce(Connection& connection, drivers::PacketBuffer& buffer, std::uint64_t now_ns) noexcept;
    int flush(std::uint64_t now_ns) noexcept;
    void send_retry(const drivers::PacketBuffer& initial, const struct PacketHeader& header,
                    std::uint64_t now_ns) noexcept;
    void send_version_negotiation(const drivers::PacketBuffer& datagram, const struct PacketHeader& header) noexcept;
    void send_now(drivers::PacketBuffer* buffer) noexcept;
    void receive_unmatched(drivers::PacketBuffer& buffer, std::uint64_t now_ns) noexcept;
    void send_stateless_reset(const drivers::PacketBuffer& trigger, std::uint64_t now_ns) noexcept;

    EndpointConfig config_;
    std::unique_ptr<drivers::DatagramDriver> driver_;
    std::unique_ptr<Slot[]> slots_;
    std::unique_ptr<class AddressTokenIssuer> tokens_;   // with `retry`
    std::unique_ptr<class RetryIntegrity> retry_tags_;
    std::uint32_t capacity_ = 0;
    std::uint32_t gso_segments_ = 1;   // datagrams per send buffer
    EndpointStats stats_;
    StatelessResetKey reset_key_;
    std::uint64_t reset_window_start_ns_ = 0;   // the budget of stateless resets refills each second
    std::uint32_t resets_in_window_ = 0;
};

}  // namespace cf::quic
