// PeerAddress: numeric "a.b.c.d:port" and "[v6]:port" to and from the kernel's sockaddr. No resolver, ever: a
// name lookup can block for seconds, and nothing on a driver's path may do that.
#include <arpa/inet.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "drivers/packet.hpp"
#include "platform/os/last_error.hpp"

namespace cf::drivers {
namespace {

// Longest address text we accept between the start (or the brackets) and the port: INET6_ADDRSTRLEN covers
// "ffff:...:255.255.255.255".
constexpr std::size_t kMaxHostChars = INET6_ADDRSTRLEN;
// Messages quote the text cut at 80 characters ('%.80s'), so a huge input cannot push the reason out.

// Decimal 0..65535, digits only (no sign, no spaces, at most 5 digits so "000080" is refused too).
bool parse_port(const char* text, std::uint16_t& port) {
    std::size_t digits = 0;
    std::uint32_t value = 0;
    for (; text[digits] != '\0'; ++digits) {
        if (digits == 5 || text[digits] < '0' || text[digits] > '9') return false;
        value = value * 10 + static_cast<std::uint32_t>(text[digits] - '0');
    }
    if (digits == 0 || value > 65535) return false;
    port = static_cast<std::uint16_t>(value);
    return true;
}

}  // namespace

int PeerAddress::parse(const char* text, PeerAddress& out) noexcept {
    if (text == nullptr || text[0] == '\0') return platform::fail(EINVAL, "peer address '': empty");

    char host[kMaxHostChars + 1];
    const char* port_text = nullptr;
    bool bracketed = false;
    if (text[0] == '[') {
        const char* close = std::strchr(text, ']');
        if (close == nullptr) return platform::fail(EINVAL, "peer address '%.80s': no closing ']'", text);
        const auto length = static_cast<std::size_t>(close - text - 1);
        if (length == 0 || length > kMaxHostChars) {
            return platform::fail(EINVAL, "peer address '%.80s': bad IPv6 address length", text);
        }
        if (close[1] != ':') {
            return platform::fail(EINVAL, "peer address '%.80s': expected ':port' after ']'", text);
        }
        std::memcpy(host, text + 1, length);
        host[length] = '\0';
        port_text = close + 2;
        bracketed = true;
    } else {
        const char* colon = std::strrchr(text, ':');
        if (colon == nullptr) return platform::fail(EINVAL, "peer address '%.80s': no ':port'", text);
        const auto length = static_cast<std::size_t>(colon - text);
        if (std::memchr(text, ':', length) != nullptr) {
            return platform::fail(EINVAL, "peer address '%.80s': an IPv6 address needs brackets, "
                                  "as in [::1]:5000", text);
        }
        if (length == 0 || length > kMaxHostChars) {
            return platform::fail(EINVAL, "peer address '%.80s': bad IPv4 address length", text);
        }
        std::memcpy(host, text, length);
        host[length] = '\0';
        port_text = colon + 1;
    }

    std::uint16_t port = 0;
    if (!parse_port(port_text, port)) {
        return platform::fail(EINVAL, "peer address '%.80s': port must be a number 0..65535", text);
    }
    PeerAddress parsed;
    if (bracketed) {
        parsed.addr.v6.sin6_family = AF_INET6;
        parsed.addr.v6.sin6_port = htons(port);
        if (inet_pton(AF_INET6, host, &parsed.addr.v6.sin6_addr) != 1) {
            return platform::fail(EINVAL, "peer address '%.80s': '%s' is not a numeric IPv6 address", text,
                                  host);
        }
        parsed.length = sizeof(sockaddr_in6);
    } else {
        parsed.addr.v4.sin_family = AF_INET;
        parsed.addr.v4.sin_port = htons(port);
        if (inet_pton(AF_INET, host, &parsed.addr.v4.sin_addr) != 1) {
            return platform::fail(EINVAL, "peer address '%.80s': '%s' is not a numeric IPv4 address (names "
                                  "are not resolved)", text, host);
        }
        parsed.length = sizeof(sockaddr_in);
    }
    out = parsed;
    return 0;
}

const char* PeerAddress::format(char* out, std::size_t size) const noexcept {
    if (out == nullptr || size == 0) return out;
    char host[INET6_ADDRSTRLEN] = "?";
    if (length != 0 && addr.any.sa_family == AF_INET) {
        inet_ntop(AF_INET, &addr.v4.sin_addr, host, sizeof host);
        std::snprintf(out, size, "%s:%u", host, unsigned{port()});
    } else if (length != 0 && addr.any.sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &addr.v6.sin6_addr, host, sizeof host);
        std::snprintf(out, size, "[%s]:%u", host, unsigned{port()});
    } else {
        std::snprintf(out, size, "(unset)");
    }
    return out;
}

std::uint16_t PeerAddress::port() const noexcept {
    if (length == 0) return 0;
    if (addr.any.sa_family == AF_INET) return ntohs(addr.v4.sin_port);
    if (addr.any.sa_family == AF_INET6) return ntohs(addr.v6.sin6_port);
    return 0;
}

// Compares what identifies an endpoint, not raw bytes: the kernel leaves padding (sin_zero) and IPv6 flow labels
// as it likes, and two addresses that differ only there are the same peer. The IPv6 scope (interface) counts.
bool PeerAddress::operator==(const PeerAddress& other) const noexcept {
    if (length == 0 || other.length == 0) return length == other.length;
    if (addr.any.sa_family != other.addr.any.sa_family) return false;
    if (addr.any.sa_family == AF_INET) {
        return addr.v4.sin_port == other.addr.v4.sin_port &&
               addr.v4.sin_addr.s_addr == other.addr.v4.sin_addr.s_addr;
    }
    if (addr.any.sa_family == AF_INET6) {
        return addr.v6.sin6_port == other.addr.v6.sin6_port && addr.v6.sin6_scope_id == other.addr.v6.sin6_scope_id &&
               std::memcmp(&addr.v6.sin6_addr, &other.addr.v6.sin6_addr, sizeof(in6_addr)) == 0;
    }
    return false;   // another family: not something parse() or a UDP socket produces
}

}  // namespace cf::drivers
