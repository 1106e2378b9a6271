// cf-h3-peer: an HTTP/3 client and server on our QUIC transport (cf::quic::Endpoint) and nghttp3, to run against
// ngtcp2's gtlsserver/gtlsclient (tests/quic/h3/h3_interop.sh). Test support, not engine code.
//
//   cf-h3-peer client [options] ADDR PORT URL...   GETs each URL (repeated up to -n requests) on ONE connection,
//                                                  all at once; prints one line per response and one for the
//                                                  connection (see usage()).
//   cf-h3-peer server [options] ADDR PORT KEY CERT serves "/N" as N bytes of h3_content.hpp's pattern, or files
//                                                  of --htdocs; prints "listening ADDR" and a line per connection
//                                                  (when it closes, or when the server stops).
//   cf-h3-peer content N                           writes the N bytes "/N" serves to stdout.
// Exit status: 0 success, 1 the transfer or the connection failed, 2 bad arguments.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "engine/quic/endpoint.hpp"
#include "platform/os/last_error.hpp"
#include "tests/quic/h3/h3_content.hpp"
#include "tests/quic/h3/h3_session.hpp"

using namespace cf::quic;

namespace {

constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;

volatile sig_atomic_t stop_requested = 0;
void on_signal(int) { stop_requested = 1; }

// For printf's %llu.
unsigned long long u64(std::uint64_t value) { return static_cast<unsigned long long>(value); }

std::uint64_t now_ns() {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                          std::chrono::steady_clock::now().time_since_epoch())
                                          .count());
}

void usage(FILE* out) {
    std::fprintf(out,
        "usage: cf-h3-peer client [options] ADDR PORT URL...\n"
        "       cf-h3-peer server [options] ADDR PORT KEY CERT\n"
        "       cf-h3-peer content N\n"
        "ADDR is numeric IPv4 or IPv6 (127.0.0.1, ::1). URLs are https://HOST[:PORT]/PATH; HOST is the TLS server\n"
        "name and :authority.\n"
        "client options:\n"
        "  -n, --requests=N         requests in all, the URLs taken in turn (default: one per URL)\n"
        "  --ca=FILE                verify the server against this CA (default: no verification, like gtlsclient)\n"
        "  --key-update-after=BYTES start a key update once this many body bytes arrived\n"
        "  --key-updates=K          ... and K in all, one per BYTES (default 1)\n"
        "  --download=DIR           also write each body to DIR/<last path component>\n"
        "  --timeout=SECONDS        give up after this long (default 60)\n"
        "client output (stdout), one line per response, then one for the connection:\n"
        "  response PATH status=S size=BYTES sha256=HEX\n"
        "  connection alpn=A cipher=C retried=0|1 key_updates=K packets_lost=L\n"
        "server options:\n"
        "  --htdocs=DIR             serve files of DIR (default: \"/N\" is N bytes of the test pattern)\n"
        "  --retry                  answer every new client with a Retry (address validation)\n"
        "  --timeout=SECONDS        exit after this long (default: at SIGINT/SIGTERM)\n"
        "both:\n"
        "  --ciphers=LIST           TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305_SHA256,\n"
        "                           separated by ':' (default: all three)\n"
        "  -q, --quiet              no progress lines on stderr\n"
        "exit status: 0 success, 1 the transfer or the connection failed, 2 bad arguments\n");
}

int bad_usage(const char* what, const std::string& value = {}) {
    std::fprintf(stderr, "cf-h3-peer: %s%s%s\n", what, value.empty() ? "" : ": ", value.c_str());
    usage(stderr);
    return kExitUsage;
}

bool parse_unsigned(const std::string& text, std::uint64_t& out) {
    if (text.empty() || text.size() > 19) return false;
    out = 0;
    for (const char c : text) {
        if (c < '0' || c > '9') return false;
        out = out * 10 + static_cast<std::uint64_t>(c - '0');
    }
    return true;
}

const char* cipher_name(CipherSuite cipher) {
    switch (cipher) {
        case CipherSuite::aes_128_gcm_sha256: return "TLS_AES_128_GCM_SHA256";
        case CipherSuite::aes_256_gcm_sha384: return "TLS_AES_256_GCM_SHA384";
        case CipherSuite::chacha20_poly1305_sha256: return "TLS_CHACHA20_POLY1305_SHA256";
    }
    return "?";
}

bool parse_ciphers(const std::string& text, std::vector<CipherSuite>& out) {
    std::size_t start = 0;
    while (start <= text.size()) {
        const std::size_t end = std::min(text.find(':', start), text.size());
        const std::string name = text.substr(start, end - start);
        bool known = false;
        for (const CipherSuite c : {CipherSuite::aes_128_gcm_sha256, CipherSuite::aes_256_gcm_sha384,
                                    CipherSuite::chacha20_poly1305_sha256}) {
            if (name == cipher_name(c)) {
                out.push_back(c);
                known = true;
            }
        }
        if (!known) return false;
        start = end + 1;
    }
    return !out.empty();
}

// "--name=value" or "--name value" (also "-n value"): the value, or false if `arg` is not that option.
bool option(const char* name, const char* short_name, int& i, int argc, char** argv, std::string& value,
            bool& missing) {
    const std::string arg = argv[i];
    const std::string prefix = std::string(name) + "=";
    if (arg.compare(0, prefix.size(), prefix) == 0) {
        value = arg.substr(prefix.size());
        return true;
    }
    if (arg == name || (short_name != nullptr && arg == short_name)) {
        if (i + 1 >= argc) {
            missing = true;
            return true;
        }
        value = argv[++i];
        return true;
    }
    return false;
}

struct Options {
    std::vector<std::string> positional;
    std::uint64_t requests = 0;
    std::string ca_file;
    std::string download;
    std::uint64_t key_update_after = UINT64_MAX;
    std::uint64_t key_updates = 1;
    double timeout_s = 0;
    std::string htdocs;
    bool retry = false;
    std::vector<CipherSuite> ciphers;
    bool quiet = false;
};

int parse_options(int argc, char** argv, bool server, Options& o) {
    for (int i = 2; i < argc; ++i) {
        std::string value;
        bool missing = false;
        std::uint64_t number = 0;
        const std::string arg = argv[i];
        if (arg == "-q" || arg == "--quiet") {
            o.quiet = true;
        } else if (arg == "-h" || arg == "--help") {
            usage(stdout);
            std::exit(0);
        } else if (option("--ciphers", nullptr, i, argc, argv, value, missing)) {
            if (missing || !parse_ciphers(value, o.ciphers)) return bad_usage("bad --ciphers", value);
        } else if (option("--timeout", nullptr, i, argc, argv, value, missing)) {
            if (missing || !parse_unsigned(value, number) || number == 0 || number > 86400) {
                return bad_usage("--timeout wants seconds, 1 to 86400", value);
            }
            o.timeout_s = static_cast<double>(number);
        } else if (!server && option("--requests", "-n", i, argc, argv, value, missing)) {
            if (missing || !parse_unsigned(value, number) || number == 0 || number > 100000) {
                return bad_usage("-n wants 1 to 100000 requests", value);
            }
            o.requests = number;
        } else if (!server && option("--ca", nullptr, i, argc, argv, value, missing)) {
            if (missing || value.empty()) return bad_usage("--ca wants a file");
            o.ca_file = value;
        } else if (!server && option("--download", nullptr, i, argc, argv, value, missing)) {
            if (missing || value.empty()) return bad_usage("--download wants a directory");
            o.download = value;
        } else if (!server && option("--key-update-after", nullptr, i, argc, argv, value, missing)) {
            if (missing || !parse_unsigned(value, number)) return bad_usage("--key-update-after wants bytes", value);
            o.key_update_after = number == 0 ? 1 : number;
        } else if (!server && option("--key-updates", nullptr, i, argc, argv, value, missing)) {
            if (missing || !parse_unsigned(value, number) || number > 1000) {
                return bad_usage("--key-updates wants a count, 0 to 1000", value);
            }
            o.key_updates = number;
        } else if (server && option("--htdocs", nullptr, i, argc, argv, value, missing)) {
            if (missing || value.empty()) return bad_usage("--htdocs wants a directory");
            o.htdocs = value;
        } else if (server && arg == "--retry") {
            o.retry = true;
        } else if (arg.size() > 1 && arg[0] == '-') {
            return bad_usage("unknown option", arg);
        } else {
            o.positional.push_back(arg);
        }
    }
    return 0;
}

// ADDR and PORT into an address: numeric only; IPv6 in brackets or bare.
int parse_address(const std::string& host, const std::string& port, cf::drivers::PeerAddress& out) {
    std::uint64_t number = 0;
    if (!parse_unsigned(port, number) || number > 65535) return -EINVAL;
    const bool v6 = host.find(':') != std::string::npos && host.front() != '[';
    const std::string text = (v6 ? "[" + host + "]" : host) + ":" + port;
    return cf::drivers::PeerAddress::parse(text.c_str(), out);
}

std::string format(const cf::drivers::PeerAddress& address) {
    char text[96];
    return address.format(text, sizeof text);
}

EndpointConfig endpoint_config(const cf::drivers::PeerAddress& bind, const TlsContext& tls) {
    EndpointConfig config;
    config.driver = cf::drivers::DriverKind::socket;
    config.udp.bind = bind;
    config.udp.pool.count = 1024;
    config.udp.pool.prefer_hugepages = false;
    // Sleep in the kernel (up to 1 ms, shorter than any timer that matters here) rather than spin: the peer
    // program shares the machine's cores.
    config.udp.busy_poll = false;
    config.udp.rx_wait_us = 200;
    config.connection.tls = &tls;
    config.connection.parameters.max_idle_timeout_ms = 30000;
    config.connection.streams.max_message_bytes = 0;
    return config;
}

// ----- client ------------------------------------------------------------------------------------------------

struct Url {
    std::string host;        // the TLS server name
    std::string authority;   // host[:port]
    std::string path;
};

bool parse_url(const std::string& text, Url& out) {
    const std::string scheme = "https://";
    if (text.compare(0, scheme.size(), scheme) != 0) return false;
    const std::size_t slash = text.find('/', scheme.size());
    out.authority = text.substr(scheme.size(), slash == std::string::npos ? std::string::npos : slash - scheme.size());
    out.path = slash == std::string::npos ? "/" : text.substr(slash);
    if (out.authority.empty()) return false;
    if (out.authority.front() == '[') {
        const std::size_t close = out.authority.find(']');
        if (close == std::string::npos) return false;
        out.host = out.authority.substr(1, close - 1);
    } else {
        out.host = out.authority.substr(0, out.authority.find(':'));
    }
    return !out.host.empty();
}

class Client final : public h3::Handler {
public:
    struct Response {
        std::string path;
        int status = 0;
        std::uint64_t size = 0;
        std::unique_ptr<h3::Sha256> sha;
        FILE* file = nullptr;   // --download
        bool done = false;
    };

    std::map<std::int64_t, Response> responses;
    std::uint64_t body_bytes = 0;
    std::uint64_t completed = 0;
    bool bad = false;

    void on_status(std::int64_t stream, int status) override { responses[stream].status = status; }
    void on_body(std::int64_t stream, const std::uint8_t* data, std::size_t size) override {
        Response& r = responses[stream];
        r.sha->update(data, size);
        if (r.file != nullptr && std::fwrite(data, 1, size, r.file) != size) bad = true;
        r.size += size;
        body_bytes += size;
    }
    void on_end(std::int64_t stream) override {
        Response& r = responses[stream];
        if (r.done) return;
        r.done = true;
        ++completed;
        if (r.file != nullptr && std::fclose(r.file) != 0) bad = true;
        r.file = nullptr;
        std::printf("response %s status=%d size=%llu sha256=%s\n", r.path.c_str(), r.status,
                    u64(r.size), r.sha->hex().c_str());
        if (r.status != 200) bad = true;
    }
};

int run_client(const Options& o) {
    if (o.positional.size() < 3) return bad_usage("client wants ADDR PORT URL...");
    cf::drivers::PeerAddress server;
    if (parse_address(o.positional[0], o.positional[1], server) != 0) {
        return bad_usage("bad address or port", o.positional[0] + " " + o.positional[1]);
    }
    std::vector<Url> urls;
    for (std::size_t i = 2; i < o.positional.size(); ++i) {
        Url url;
        if (!parse_url(o.positional[i], url)) return bad_usage("bad URL (https://HOST[:PORT]/PATH)", o.positional[i]);
        urls.push_back(url);
    }
    const std::uint64_t total = o.requests != 0 ? o.requests : urls.size();

    TlsConfig tls_config;
    tls_config.role = EndpointRole::client;
    tls_config.alpn = {"h3"};
    tls_config.server_name = urls[0].host;
    tls_config.ciphers = o.ciphers;
    if (o.ca_file.empty()) {
        tls_config.verify_peer = false;
    } else {
        tls_config.ca_file = o.ca_file;
    }
    std::unique_ptr<TlsContext> tls;
    if (TlsContext::create(tls_config, tls) != 0) {
        std::fprintf(stderr, "cf-h3-peer: TLS: %s\n", cf::platform::last_error_message());
        return kExitFailed;
    }
    cf::drivers::PeerAddress bind;
    (void)cf::drivers::PeerAddress::parse(server.addr.any.sa_family == AF_INET6 ? "[::]:0" : "0.0.0.0:0", bind);
    EndpointConfig config = endpoint_config(bind, *tls);
    StreamTableConfig& streams = config.connection.streams;
    // Requests at once: as many as the server lets us open, up to our slots; responses arrive into big rings.
    streams.local_bidi_streams = static_cast<std::uint32_t>(std::min<std::uint64_t>(total, 128));
    streams.local_uni_streams = 3;   // control, QPACK encoder, QPACK decoder
    streams.peer_bidi_streams = 0;
    streams.peer_uni_streams = 8;    // the server's three, and room for ones we ignore (RFC 9114 section 6.2.3)
    streams.send_ring_bytes = 16 * 1024;
    streams.receive_ring_bytes = 1024 * 1024;
    streams.stream_window = 256 * 1024;
    streams.connection_window = 4 * 1024 * 1024;
    std::unique_ptr<Endpoint> endpoint;
    if (Endpoint::open(config, endpoint) != 0) {
        std::fprintf(stderr, "cf-h3-peer: endpoint: %s\n", cf::platform::last_error_message());
        return kExitFailed;
    }
    Connection* connection = nullptr;
    const int rc = endpoint->connect(server, now_ns(), connection);
    if (rc != 0) {
        std::fprintf(stderr, "cf-h3-peer: connect to %s: %s (%s)\n", format(server).c_str(), std::strerror(-rc),
                     cf::platform::last_error_message());
        return kExitFailed;
    }

    Client client;
    std::unique_ptr<h3::Session> session;
    std::uint64_t submitted = 0;
    std::uint64_t updates_started = 0;
    const double timeout = o.timeout_s > 0 ? o.timeout_s : 60.0;
    const auto start = std::chrono::steady_clock::now();
    auto next_progress = start + std::chrono::seconds(1);
    bool timed_out = false;
    while (!stop_requested) {
        (void)endpoint->poll(now_ns());
        if (connection->closed()) break;
        if (!session && (connection->state() == ConnectionState::established || connection->handshake_confirmed())) {
            if (h3::Session::create(*connection, client, session) != 0) {
                connection->close(0x101, true, "H3_GENERAL_PROTOCOL_ERROR");   // our setup failed
                break;
            }
        }
        if (session) {
            while (submitted < total) {
                const Url& url = urls[submitted % urls.size()];
                const std::int64_t stream = session->submit_get(url.authority, url.path);
                if (stream == -EAGAIN) break;   // at the server's MAX_STREAMS or our slots: when one closes
                if (stream < 0) {
                    std::fprintf(stderr, "cf-h3-peer: request %s: %lld\n", url.path.c_str(),
                                 static_cast<long long>(stream));
                    break;
                }
                Client::Response& r = client.responses[stream];
                r.path = url.path;
                r.sha = std::make_unique<h3::Sha256>();
                if (!o.download.empty()) {
                    const std::string name = url.path.substr(url.path.rfind('/') + 1);
                    const std::string file = o.download + "/" + (name.empty() ? "index.html" : name);
                    r.file = std::fopen(file.c_str(), "wb");
                    if (r.file == nullptr) std::fprintf(stderr, "cf-h3-peer: cannot write %s\n", file.c_str());
                }
                ++submitted;
            }
            if (session->pump() != 0) break;
            // Key updates: the k-th once k * key_update_after body bytes arrived (each waits until the peer
            // acknowledged a packet under the previous keys: -EAGAIN until then).
            if (updates_started < o.key_updates &&
                client.body_bytes / o.key_update_after > updates_started) {
                const int updated = connection->update_keys();
                if (updated == 0) {
                    ++updates_started;
                    if (!o.quiet) {
                        std::fprintf(stderr, "key update %llu started after %llu body bytes\n", u64(updates_started),
                                     u64(client.body_bytes));
                    }
                } else if (updated != -EAGAIN) {
                    std::fprintf(stderr, "cf-h3-peer: update_keys: %s\n", std::strerror(-updated));
                    updates_started = o.key_updates;
                }
            }
            if (client.completed == total) break;
        }
        const auto now = std::chrono::steady_clock::now();
        if (now >= next_progress) {
            next_progress = now + std::chrono::seconds(1);
            if (!o.quiet) {
                std::fprintf(stderr, "progress: %s, %llu body bytes, %llu of %llu responses\n",
                             connection_state_name(connection->state()),
                             u64(client.body_bytes),
                             u64(client.completed), u64(total));
            }
            if (std::chrono::duration<double>(now - start).count() > timeout) {
                timed_out = true;
                break;
            }
        }
    }
    const bool all = client.completed == total;
    // Whether it ended well or not: the counts as they stand, then a polite close.
    std::printf("connection alpn=%s cipher=%s retried=%d key_updates=%llu packets_lost=%llu\n",
                connection->tls().alpn().c_str(),
                connection->tls().handshake_complete() ? cipher_name(connection->tls().cipher()) : "none",
                connection->retried() ? 1 : 0, u64(connection->key_updates()),
                u64(connection->recovery().stats().packets_lost));
    std::fflush(stdout);
    // As it stands before our close; and the endpoint frees a closed connection's slot while we linger.
    const std::string why = connection->error_message();
    const std::string state = connection_state_name(connection->state());
    const std::uint64_t code = connection->error_code();
    const bool closed_badly = connection->closed_by_peer() && code != 0x100 && code != 0;
    if (!connection->closed()) {
        if (session) {
            session->close("done");
        } else {
            connection->close(0x100, true, "done");
        }
    }
    session.reset();
    connection = nullptr;
    const auto linger = std::chrono::steady_clock::now() + std::chrono::milliseconds(100);
    while (std::chrono::steady_clock::now() < linger) (void)endpoint->poll(now_ns());   // CONNECTION_CLOSE goes out
    if (timed_out) std::fprintf(stderr, "cf-h3-peer: timed out after %.0f s\n", timeout);
    if (!all) {
        std::fprintf(stderr, "cf-h3-peer: %llu of %llu responses complete; connection %s, code 0x%llx: %s\n",
                     u64(client.completed), u64(total),
                     state.c_str(), u64(code), why.c_str());
        return kExitFailed;
    }
    if (closed_badly || client.bad) {
        std::fprintf(stderr, "cf-h3-peer: %s\n", client.bad ? "a response was not 200" : why.c_str());
        return kExitFailed;
    }
    return 0;
}

// ----- server ------------------------------------------------------------------------------------------------

// The responses of one connection: where each body's bytes come from.
class Server final : public h3::Handler {
public:
    Server(const std::string& htdocs, std::map<std::string, std::vector<std::uint8_t>>& files)
        : htdocs_(htdocs), files_(files) {}

    h3::Session* session = nullptr;
    std::uint64_t requests = 0;
    std::uint64_t bytes_served = 0;

    void on_request(std::int64_t stream, const std::string& method, const std::string& path) override {
        ++requests;
        Body body;
        int status = 200;
        if (method != "GET" && method != "HEAD") {
            status = 405;
        } else if (!htdocs_.empty()) {
            const std::vector<std::uint8_t>* file = load(path);
            if (file == nullptr) {
                status = 404;
            } else {
                body.data = file->data();
                body.size = file->size();
            }
        } else {
            std::uint64_t n = 0;
            if (path.size() > 1 && parse_unsigned(path.substr(1), n) && n <= (std::uint64_t{1} << 40)) {
                body.size = n;
            } else {
                status = 404;
            }
        }
        if (method == "HEAD") body.size = 0;
        bodies_[stream] = body;
        (void)session->submit_response(stream, status, body.size, status == 200 && body.size > 0);
    }

    void body_chunk(std::int64_t stream, const std::uint8_t*& data, std::size_t& size, bool& eof) override {
        Body& body = bodies_[stream];
        const std::uint64_t left = body.size - body.offset;
        size = static_cast<std::size_t>(std::min<std::uint64_t>(left, h3::Content::kMaxChunk));
        data = body.data != nullptr ? body.data + body.offset : h3::Content::at(body.offset);
        body.offset += size;
        bytes_served += size;
        eof = body.offset == body.size;
        if (eof) bodies_.erase(stream);
    }

private:
    struct Body {
        const std::uint8_t* data = nullptr;   // a file's bytes; null: the pattern
        std::uint64_t size = 0;
        std::uint64_t offset = 0;
    };

    const std::vector<std::uint8_t>* load(const std::string& path) {
        if (path.empty() || path[0] != '/' || path.find("..") != std::string::npos) return nullptr;
        const std::string name = path == "/" ? "/index.html" : path.substr(0, path.find('?'));
        auto found = files_.find(name);
        if (found != files_.end()) return &found->second;
        std::ifstream in(htdocs_ + name, std::ios::binary);
        if (!in) return nullptr;
        std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        return &files_.emplace(name, std::move(bytes)).first->second;
    }

    std::string htdocs_;
    std::map<std::string, std::vector<std::uint8_t>>& files_;
    std::map<std::int64_t, Body> bodies_;
};

// One line per connection, when it closed or when the server stops.
void report(const Connection& c, const Server& handler) {
    const RecoveryStats& r = c.recovery().stats();
    std::printf("connection alpn=%s cipher=%s key_updates=%llu requests=%llu bytes=%llu packets_sent=%llu "
                "packets_lost=%llu spurious=%llu congestion_events=%llu ptos=%llu state=%s code=0x%llx%s %s\n",
                c.tls().alpn().c_str(), cipher_name(c.tls().cipher()), u64(c.key_updates()), u64(handler.requests),
                u64(handler.bytes_served), u64(c.packets_sent()), u64(r.packets_lost), u64(r.spurious_losses),
                u64(r.congestion_events), u64(r.pto_expirations), connection_state_name(c.state()),
                u64(c.error_code()), c.closed_by_peer() ? " by-peer" : "", c.error_message().c_str());
    std::fflush(stdout);
}

int run_server(const Options& o) {
    if (o.positional.size() != 4) return bad_usage("server wants ADDR PORT KEY CERT");
    cf::drivers::PeerAddress bind;
    if (parse_address(o.positional[0], o.positional[1], bind) != 0) {
        return bad_usage("bad address or port", o.positional[0] + " " + o.positional[1]);
    }
    TlsConfig tls_config;
    tls_config.role = EndpointRole::server;
    tls_config.alpn = {"h3"};
    tls_config.key_file = o.positional[2];
    tls_config.certificate_file = o.positional[3];
    tls_config.ciphers = o.ciphers;
    std::unique_ptr<TlsContext> tls;
    if (TlsContext::create(tls_config, tls) != 0) {
        std::fprintf(stderr, "cf-h3-peer: TLS: %s\n", cf::platform::last_error_message());
        return kExitFailed;
    }
    EndpointConfig config = endpoint_config(bind, *tls);
    config.retry = o.retry;
    config.max_connections = 8;
    StreamTableConfig& streams = config.connection.streams;
    streams.local_bidi_streams = 0;
    streams.local_uni_streams = 3;
    streams.peer_bidi_streams = 128;   // requests at once (MAX_STREAMS gives credit back as they close)
    streams.peer_uni_streams = 8;
    streams.send_ring_bytes = 256 * 1024;
    streams.receive_ring_bytes = 16 * 1024;
    streams.stream_window = 16 * 1024;
    std::unique_ptr<Endpoint> endpoint;
    if (Endpoint::open(config, endpoint) != 0) {
        std::fprintf(stderr, "cf-h3-peer: endpoint: %s\n", cf::platform::last_error_message());
        return kExitFailed;
    }
    std::printf("listening %s\n", format(endpoint->local_address()).c_str());
    std::fflush(stdout);

    struct Served {
        std::unique_ptr<Server> handler;
        std::unique_ptr<h3::Session> session;
    };
    std::map<std::string, std::vector<std::uint8_t>> files;
    std::map<Connection*, Served> served;   // until the connection closes (before its slot can be reused)
    std::uint64_t failures = 0;
    const auto end = o.timeout_s > 0 ? std::chrono::steady_clock::now() + std::chrono::duration<double>(o.timeout_s)
                                     : std::chrono::steady_clock::time_point::max();
    while (!stop_requested && std::chrono::steady_clock::now() < end) {
        (void)endpoint->poll(now_ns());
        for (std::uint32_t i = 0; i < endpoint->capacity(); ++i) {
            Connection* c = endpoint->connection(i);
            if (c == nullptr || c->closed() || served.count(c) != 0) continue;
            if (c->state() != ConnectionState::established && !c->handshake_confirmed()) continue;
            Served s;
            s.handler = std::make_unique<Server>(o.htdocs, files);
            if (h3::Session::create(*c, *s.handler, s.session) != 0) {
                c->close(0x101, true, "H3_GENERAL_PROTOCOL_ERROR");
                ++failures;
                continue;
            }
            s.handler->session = s.session.get();
            served.emplace(c, std::move(s));
        }
        for (auto it = served.begin(); it != served.end();) {
            Connection& c = *it->first;
            if (!c.closed()) (void)it->second.session->pump();
            if (!c.closed()) {
                ++it;
                continue;
            }
            const bool clean = c.error_code() == 0x100 || c.error_code() == 0;
            if (!clean) ++failures;
            report(c, *it->second.handler);
            it = served.erase(it);
        }
    }
    for (auto& [c, s] : served) {
        report(*c, *s.handler);   // still open: its peer's CONNECTION_CLOSE may have been lost
        s.session->close("server stopping");
    }
    const auto linger = std::chrono::steady_clock::now() + std::chrono::milliseconds(100);
    while (std::chrono::steady_clock::now() < linger) (void)endpoint->poll(now_ns());
    return failures == 0 ? 0 : kExitFailed;
}

int write_content(const Options& o) {
    std::uint64_t n = 0;
    if (o.positional.size() != 1 || !parse_unsigned(o.positional[0], n)) return bad_usage("content wants N (bytes)");
    for (std::uint64_t offset = 0; offset < n;) {
        const std::size_t chunk = static_cast<std::size_t>(std::min<std::uint64_t>(n - offset, h3::Content::kMaxChunk));
        if (std::fwrite(h3::Content::at(offset), 1, chunk, stdout) != chunk) return kExitFailed;
        offset += chunk;
    }
    return std::fflush(stdout) == 0 ? 0 : kExitFailed;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) return bad_usage("missing mode");
    const std::string mode = argv[1];
    if (mode == "-h" || mode == "--help") {
        usage(stdout);
        return 0;
    }
    if (mode != "client" && mode != "server" && mode != "content") return bad_usage("unknown mode", mode);
    Options o;
    if (const int rc = parse_options(argc, argv, mode == "server", o); rc != 0) return rc;
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    std::signal(SIGPIPE, SIG_IGN);
    if (mode == "client") return run_client(o);
    if (mode == "server") return run_server(o);
    return write_content(o);
}
