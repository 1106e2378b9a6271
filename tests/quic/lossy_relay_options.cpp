// cf-lossy-relay's options: numbers are parsed whole (no trailing text, no sign where none makes sense), every
// value is range-checked here with the option's name in the message, and create()'s own checks run last.
#include "tests/quic/lossy_relay_options.hpp"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "platform/os/last_error.hpp"

namespace cf::quic::testing {
namespace {

bool parse_double(const char* text, double& out) noexcept {
    if (text[0] == '\0' || text[0] == ' ') return false;
    char* end = nullptr;
    errno = 0;
    out = std::strtod(text, &end);
    return errno == 0 && *end == '\0' && std::isfinite(out);
}

bool parse_unsigned(const char* text, std::uint64_t max, std::uint64_t& out) noexcept {
    if (text[0] < '0' || text[0] > '9') return false;
    char* end = nullptr;
    errno = 0;
    out = std::strtoull(text, &end, 10);
    return errno == 0 && *end == '\0' && out <= max;
}

// The impairment option names, without a direction suffix.
enum class Knob { loss, loss_burst, duplicate, reorder, reorder_gap, reorder_hold, delay, rate, queue, none };

Knob knob_of(const char* name, std::size_t length) noexcept {
    static constexpr struct {
        const char* name;
        Knob knob;
    } kKnobs[] = {{"--loss", Knob::loss},           {"--loss-burst", Knob::loss_burst},
                  {"--duplicate", Knob::duplicate}, {"--reorder", Knob::reorder},
                  {"--reorder-gap", Knob::reorder_gap}, {"--reorder-hold", Knob::reorder_hold},
                  {"--delay", Knob::delay},         {"--rate", Knob::rate},
                  {"--queue", Knob::queue}};
    for (const auto& entry : kKnobs) {
        if (std::strlen(entry.name) == length && std::strncmp(entry.name, name, length) == 0) return entry.knob;
    }
    return Knob::none;
}

bool ends_with(const char* text, const char* suffix, std::size_t& stem) noexcept {
    const std::size_t length = std::strlen(text), suffix_length = std::strlen(suffix);
    if (length <= suffix_length || std::strcmp(text + length - suffix_length, suffix) != 0) return false;
    stem = length - suffix_length;
    return true;
}

// One impairment value into `m`. 0 or -EINVAL.
int apply_knob(Knob knob, const char* option, const char* value, Impairment& m) noexcept {
    double number = 0;
    std::uint64_t count = 0;
    switch (knob) {
    case Knob::loss:
    case Knob::duplicate:
    case Knob::reorder:
        if (!parse_double(value, number) || number < 0 || number > 100) {
            return platform::fail(EINVAL, "%s: '%.40s' is not a percentage in 0..100", option, value);
        }
        (knob == Knob::loss ? m.loss_percent : knob == Knob::duplicate ? m.duplicate_percent : m.reorder_percent) =
            number;
        return 0;
    case Knob::loss_burst:
        if (!parse_double(value, number) || !(number == 0 || (number >= 1 && number <= 1e6))) {
            return platform::fail(EINVAL, "%s: '%.40s' is not a mean run length in 1..1000000 (or 0)", option,
                                  value);
        }
        m.loss_burst = number;
        return 0;
    case Knob::reorder_gap:
        if (!parse_unsigned(value, 1'000'000, count)) {
            return platform::fail(EINVAL, "%s: '%.40s' is not a count in 0..1000000", option, value);
        }
        m.reorder_gap = static_cast<std::uint32_t>(count);
        return 0;
    case Knob::reorder_hold:
    case Knob::delay:
        if (!parse_double(value, number) || number < 0 || number > 3'600'000 ||
            (knob == Knob::reorder_hold && number <= 0)) {
            return platform::fail(EINVAL, "%s: '%.40s' is not milliseconds in %s3600000", option, value,
                                  knob == Knob::delay ? "0.." : "(0, ");
        }
        (knob == Knob::delay ? m.delay_ns : m.reorder_hold_ns) = static_cast<std::uint64_t>(std::llround(number * 1e6));
        return 0;
    case Knob::rate:
        if (!parse_double(value, number) || number < 0 || number > 1e6 || (number > 0 && number < 0.001)) {
            return platform::fail(EINVAL, "%s: '%.40s' is not Mbit/s in 0.001..1000000 (or 0: unlimited)", option,
                                  value);
        }
        m.rate_bits_per_second = static_cast<std::uint64_t>(std::llround(number * 1e6));
        return 0;
    case Knob::queue:
        if (!parse_unsigned(value, 1ull << 40, count)) {
            return platform::fail(EINVAL, "%s: '%.40s' is not a byte count in 0..2^40", option, value);
        }
        m.queue_bytes = count;
        return 0;
    case Knob::none:
        break;
    }
    return platform::fail(EINVAL, "%s: unknown option", option);
}

}  // namespace

const char* lossy_relay_usage() noexcept {
    return "usage: cf-lossy-relay --listen ADDR:PORT --server ADDR:PORT [options]\n"
           "  Relays UDP between the first client that sends to --listen and --server, impairing each direction.\n"
           "  Addresses are numeric: 127.0.0.1:4433, [::1]:4433; --listen port 0 picks one (printed at start).\n"
           "  --seed N            random seed (default 1): the same seed gives every datagram the same fate\n"
           "  --duration S        stop after S seconds (default: at SIGINT / SIGTERM); prints the counters\n"
           "  --slots N           datagrams held per direction (default 8192)\n"
           "  --max-datagram B    longest datagram relayed (default 2048, at most 65535); longer ones are dropped\n"
           "  Impairments, for both directions, or one with the suffix -to-server / -to-client (--loss-to-server 5):\n"
           "  --loss P            lose P percent of datagrams\n"
           "  --loss-burst B      ... in runs of mean length B (default: independent losses)\n"
           "  --duplicate P       send a copy of P percent of datagrams\n"
           "  --reorder P         hold back P percent of datagrams, until --reorder-gap later ones went out\n"
           "  --reorder-gap N     (default 3; 0: by time only) or --reorder-hold MS passed (default 20)\n"
           "  --delay MS          one-way delay in milliseconds (fractions allowed)\n"
           "  --rate MBIT         bottleneck rate in Mbit/s (serialisation delay per datagram; default unlimited)\n"
           "  --queue BYTES       bottleneck queue; datagrams beyond it are dropped (default: no limit)\n";
}

int parse_lossy_relay_options(int argc, const char* const* argv, LossyRelayOptions& out) noexcept {
    LossyRelayOptions options;
    for (int i = 1; i < argc; ++i) {
        const char* option = argv[i];
        if (std::strcmp(option, "--help") == 0 || std::strcmp(option, "-h") == 0) {
            options.help = true;
            continue;
        }
        if (i + 1 >= argc) return platform::fail(EINVAL, "%.60s: needs a value", option);
        const char* value = argv[++i];
        std::uint64_t count = 0;
        if (std::strcmp(option, "--listen") == 0 || std::strcmp(option, "--server") == 0) {
            PeerAddress& address = option[2] == 'l' ? options.config.listen : options.config.server;
            if (PeerAddress::parse(value, address) != 0) {
                char reason[160];   // a copy: fail() rewrites the buffer last_error_message() points into
                std::snprintf(reason, sizeof reason, "%s", platform::last_error_message());
                return platform::fail(EINVAL, "%s: %s", option, reason);
            }
        } else if (std::strcmp(option, "--seed") == 0) {
            if (!parse_unsigned(value, UINT64_MAX, options.config.seed)) {
                return platform::fail(EINVAL, "--seed: '%.40s' is not an unsigned integer", value);
            }
        } else if (std::strcmp(option, "--duration") == 0) {
            if (!parse_double(value, options.duration_s) || options.duration_s <= 0 || options.duration_s > 86400) {
                return platform::fail(EINVAL, "--duration: '%.40s' is not seconds in (0, 86400]", value);
            }
        } else if (std::strcmp(option, "--slots") == 0) {
            if (!parse_unsigned(value, 1u << 20, count) || count == 0) {
                return platform::fail(EINVAL, "--slots: '%.40s' is not a count in 1..1048576", value);
            }
            options.config.slots = static_cast<std::uint32_t>(count);
        } else if (std::strcmp(option, "--max-datagram") == 0) {
            if (!parse_unsigned(value, 65535, count) || count == 0) {
                return platform::fail(EINVAL, "--max-datagram: '%.40s' is not a byte count in 1..65535", value);
            }
            options.config.max_datagram_bytes = static_cast<std::uint32_t>(count);
        } else {
            std::size_t stem = std::strlen(option);
            bool to_server = true, to_client = true;
            if (ends_with(option, "-to-server", stem)) to_client = false;
            else if (ends_with(option, "-to-client", stem)) to_server = false;
            const Knob knob = knob_of(option, stem);
            if (knob == Knob::none) return platform::fail(EINVAL, "%.60s: unknown option", option);
            if (to_server) {
                if (int status = apply_knob(knob, option, value, options.config.to_server); status != 0) return status;
            }
            if (to_client) {
                if (int status = apply_knob(knob, option, value, options.config.to_client); status != 0) return status;
            }
        }
    }
    if (!options.help) {
        if (options.config.listen.length == 0) return platform::fail(EINVAL, "--listen is required");
        if (options.config.server.length == 0) return platform::fail(EINVAL, "--server is required");
        if (options.config.server.port() == 0) return platform::fail(EINVAL, "--server: the port cannot be 0");
        if (int status = validate_impairment(options.config.to_server, "to-server"); status != 0) return status;
        if (int status = validate_impairment(options.config.to_client, "to-client"); status != 0) return status;
    }
    out = options;
    return 0;
}

}  // namespace cf::quic::testing
