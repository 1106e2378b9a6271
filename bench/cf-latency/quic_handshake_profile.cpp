// cf-quic-handshake-profile cf|ngtcp2|tls [count]: `count` (default 20) whole in-memory handshakes of one kind, the
// quic scenario's (quic_in_memory.hpp, quic_ngtcp2_peer.hpp), and nothing else, for instruction profiles that do
// not depend on this shared machine's noise:
//   valgrind --tool=callgrind --toggle-collect='*run_handshakes*' cf-quic-handshake-profile cf 20
// then instructions per handshake = the profile's total / count (certificates and contexts are made outside it).
// Exit status 0, or 1 with a message (a handshake failed, ngtcp2 not built in).
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "bench/cf-latency/quic_bench_certificate.hpp"
#include "bench/cf-latency/quic_in_memory.hpp"
#include "bench/cf-latency/quic_ngtcp2_peer.hpp"
#include "platform/os/last_error.hpp"

using namespace cf::quic;

namespace {

enum class Kind { cf, ngtcp2, tls };

// Not inlined: the profile's collection starts and ends at its call.
[[gnu::noinline]] long run_handshakes(Kind kind, long count, const TlsContext& client, const TlsContext& server,
                                      cf::latency::Ngtcp2Pair* peer) {
    long done = 0;
    for (long i = 0; i < count; ++i) {
        const bool ok = kind == Kind::cf       ? cf::latency::quic_handshake_in_memory(client, server)
                        : kind == Kind::ngtcp2 ? peer->handshake()
                                               : cf::latency::tls_handshake(client, server);
        done += ok ? 1 : 0;
    }
    return done;
}

}  // namespace

int main(int argc, char** argv) {
    const std::string name = argc > 1 ? argv[1] : "";
    const long count = argc > 2 ? std::strtol(argv[2], nullptr, 10) : 20;
    if ((name != "cf" && name != "ngtcp2" && name != "tls") || count <= 0 || count > 1'000'000) {
        std::fprintf(stderr, "usage: cf-quic-handshake-profile cf|ngtcp2|tls [count 1..10^6]\n");
        return 1;
    }
    const Kind kind = name == "cf" ? Kind::cf : name == "ngtcp2" ? Kind::ngtcp2 : Kind::tls;
    const cf::latency::BenchCertificate certificate;
    std::unique_ptr<TlsContext> client_tls, server_tls;
    if (cf::latency::make_bench_tls(certificate, client_tls, server_tls) != 0) {
        std::fprintf(stderr, "cf-quic-handshake-profile: %s\n", cf::platform::last_error_message());
        return 1;
    }
    std::unique_ptr<cf::latency::Ngtcp2Pair> peer;
    std::string error;
    if (kind == Kind::ngtcp2 &&
        cf::latency::Ngtcp2Pair::create(certificate.certificate_path(), certificate.key_path(), peer, error) != 0) {
        std::fprintf(stderr, "cf-quic-handshake-profile: %s\n", error.c_str());
        return 1;
    }
    const long done = run_handshakes(kind, count, *client_tls, *server_tls, peer.get());
    std::printf("%s handshakes=%ld of %ld\n", name.c_str(), done, count);
    return done == count ? 0 : 1;
}
