// cf-lossy-relay's command line, parsed into a LossyRelayConfig (kept apart from the program so the tests can feed
// it bad arguments). Impairment options apply to both directions; with the suffix -to-server or -to-client, to
// that direction only (`--loss 2 --loss-to-client 0`: later options win).
#pragma once

#include <cstdint>

#include "tests/quic/lossy_relay.hpp"

namespace cf::quic::testing {

struct LossyRelayOptions {
    LossyRelayConfig config;
    double duration_s = 0;   // 0: until SIGINT / SIGTERM
    bool help = false;       // --help was given: print the usage, run nothing
};

// The usage text (several lines, ending with a newline).
const char* lossy_relay_usage() noexcept;

// argv[1..argc-1] into `out`. 0, or -EINVAL with last_error_message() naming the option and what is wrong with
// its value (a percentage above 100, an address that does not parse, a missing value, an unknown option, a
// missing --listen or --server, an impairment create() would refuse).
int parse_lossy_relay_options(int argc, const char* const* argv, LossyRelayOptions& out) noexcept;

}  // namespace cf::quic::testing
