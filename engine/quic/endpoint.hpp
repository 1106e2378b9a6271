// A QUIC endpoint on a UDP driver (drivers/datagram_driver.hpp): the connections of one socket, run by the thread
// that polls it. poll() sends what the application queued, receives a burst, hands each datagram to the connection its Destination Connection ID names
// (a server makes a new connection for a client's first Initial), runs the connections' timers and sends what they
// have due, each datagram written straight into a driver buffer and sent in bursts.
//
// Connection IDs are 8 random bytes from GnuTLS's generator, drawn when a connection is made (not per packet).
// Connections are kept in a fixed table of max_connections slots, looked up by comparing IDs (a handful per
// thread is the use: a hashed table, keyed against peers who choose IDs, comes with more connections).
// A closed connection stays three probe timeouts (at least 100 ms; RFC 9000 section 10.2) so the peer's late
// packets find it, then its slot is freed.
//
// Untrusted input: datagrams for no connection are dropped and counted, except a server's first Initial in a
// datagram of at least 1200 bytes, which opens a connection while slots are free (with `retry`, only once it
// echoes a token from our Retry: address_token.hpp), and a datagram of that size in a version we do not speak,
// which is answered with Version Negotiation (section 6).
#pragma once

#include <cstdint>
#include <memory>

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
    void accept(drivers::PacketBuffer& buffer, std::uint64_t now_ns) noexcept;
    int flush(std::uint64_t now_ns) noexcept;
    void send_retry(const drivers::PacketBuffer& initial, const struct PacketHeader& header,
                    std::uint64_t now_ns) noexcept;
    void send_version_negotiation(const drivers::PacketBuffer& datagram, const struct PacketHeader& header) noexcept;
    void send_now(drivers::PacketBuffer* buffer) noexcept;

    EndpointConfig config_;
    std::unique_ptr<drivers::DatagramDriver> driver_;
    std::unique_ptr<Slot[]> slots_;
    std::unique_ptr<class AddressTokenIssuer> tokens_;   // with `retry`
    std::unique_ptr<class RetryIntegrity> retry_tags_;
    std::uint32_t capacity_ = 0;
    EndpointStats stats_;
};

}  // namespace cf::quic
