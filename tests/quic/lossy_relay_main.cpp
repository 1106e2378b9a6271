// cf-lossy-relay: the LossyRelay as a program, for interop runs by hand (tests/quic/README.md). Prints the address
// it listens on, relays until SIGINT / SIGTERM or --duration, then prints one line of counters.
// Exit status: 0 after a run, 2 for bad arguments (with the usage), 1 when the sockets cannot be set up.
#include <csignal>
#include <cstdio>
#include <memory>

#include "platform/os/last_error.hpp"
#include "tests/quic/lossy_relay.hpp"
#include "tests/quic/lossy_relay_options.hpp"

namespace {

cf::quic::testing::LossyRelay* running_relay = nullptr;

void on_signal(int) {
    if (running_relay != nullptr) running_relay->request_stop();   // async-signal-safe
}

}  // namespace

int main(int argc, char** argv) {
    using namespace cf::quic::testing;
    LossyRelayOptions options;
    if (parse_lossy_relay_options(argc, argv, options) != 0) {
        std::fprintf(stderr, "cf-lossy-relay: %s\n%s", cf::platform::last_error_message(), lossy_relay_usage());
        return 2;
    }
    if (options.help) {
        std::fputs(lossy_relay_usage(), stdout);
        return 0;
    }
    std::unique_ptr<LossyRelay> relay;
    if (LossyRelay::create(options.config, relay) != 0) {
        std::fprintf(stderr, "cf-lossy-relay: %s\n", cf::platform::last_error_message());
        return 1;
    }
    running_relay = relay.get();
    struct sigaction action{};
    action.sa_handler = on_signal;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, nullptr);
    sigaction(SIGTERM, &action, nullptr);

    char listen[64], server[64], side[64];
    std::printf("cf-lossy-relay: listening on %s, server %s (from %s)\n",
                relay->listen_address().format(listen, sizeof listen), options.config.server.format(server, sizeof server),
                relay->server_side_address().format(side, sizeof side));
    std::fflush(stdout);   // scripts read the port from this line while the relay runs

    const int status = relay->run(static_cast<std::uint64_t>(options.duration_s * 1e9));
    running_relay = nullptr;
    char line[1024];
    std::printf("cf-lossy-relay: %s\n", format_stats(relay->stats(), line, sizeof line));
    if (status != 0) {
        std::fprintf(stderr, "cf-lossy-relay: %s\n", cf::platform::last_error_message());
        return 1;
    }
    return 0;
}
