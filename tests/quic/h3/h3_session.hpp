// HTTP/3 (nghttp3) over one cf::quic::Connection, for the interop test program cf-h3-peer: test support, not
// engine code. nghttp3 knows nothing of the transport: pump() hands it what the connection's streams received and
// writes what it wants sent into them.
//
// The glue, and why it is this simple:
//   - our StreamTable copies what write() takes into the stream's send ring, so nghttp3 may forget those bytes at
//     once: they are reported acknowledged (nghttp3_conn_add_ack_offset) as soon as write() took them;
//   - a stream whose ring or credit is full is blocked in nghttp3 and unblocked once send_room() is non-zero;
//   - everything read() hands out goes to nghttp3_conn_read_stream and is consumed (flow-control credit goes back
//     when consumed; nghttp3 buffers what QPACK has not decoded yet itself);
//   - HTTP/3 needs three unidirectional streams each way (control, QPACK encoder and decoder): create() opens ours,
//     so the peer must allow at least 3 (initial_max_streams_uni) and our table must have the slots;
//   - a request stream is closed in nghttp3 once our table has freed its slot (both parts done).
// Single-threaded, like the connection it serves.
#pragma once

#include <nghttp3/nghttp3.h>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "engine/quic/connection.hpp"

namespace cf::quic::h3 {

// What the program does with HTTP events (client: responses; server: requests).
class Handler {
public:
    virtual ~Handler() = default;
    // Server: a complete request header section.
    virtual void on_request(std::int64_t /*stream*/, const std::string& /*method*/, const std::string& /*path*/) {}
    // Client: the response's :status.
    virtual void on_status(std::int64_t /*stream*/, int /*status*/) {}
    virtual void on_body(std::int64_t /*stream*/, const std::uint8_t* /*data*/, std::size_t /*size*/) {}
    // The peer ended its side of the stream (client: the response is complete).
    virtual void on_end(std::int64_t /*stream*/) {}
    // Server: bytes of a response body for read_data; `size` 0 and `eof` when done.
    virtual void body_chunk(std::int64_t /*stream*/, const std::uint8_t*& data, std::size_t& size, bool& eof) {
        data = nullptr;
        size = 0;
        eof = true;
    }
};

class Session {
public:
    // 0, or a negative nghttp3 error / errno with a message on stderr.
    static int create(Connection& connection, Handler& handler, std::unique_ptr<Session>& out);
    ~Session();
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    // Moves data both ways once; 0, or a negative nghttp3 error (the connection was closed with its H3 code).
    int pump();

    // Client: a GET on a new stream: its ID, -EAGAIN (no stream may be opened now: try again later), or an error.
    std::int64_t submit_get(const std::string& authority, const std::string& path);
    // Server: a response with a body from Handler::body_chunk (or none). 0 or an nghttp3 error.
    int submit_response(std::int64_t stream, int status, std::uint64_t content_length, bool body);

    // Closes the HTTP/3 layer gracefully (GOAWAY) and the connection with H3_NO_ERROR.
    void close(const char* reason);

private:
    explicit Session(Connection& connection, Handler& handler) : connection_(connection), handler_(handler) {}
    int read_streams();
    int write_streams();
    int retire_closed();
    void fail(int error, const char* what);

    static int on_recv_data(nghttp3_conn*, std::int64_t, const std::uint8_t*, std::size_t, void*, void*);
    static int on_begin_headers(nghttp3_conn*, std::int64_t, void*, void*);
    static int on_recv_header(nghttp3_conn*, std::int64_t, std::int32_t, nghttp3_rcbuf*, nghttp3_rcbuf*,
                              std::uint8_t, void*, void*);
    static int on_end_headers(nghttp3_conn*, std::int64_t, int, void*, void*);
    static int on_end_stream(nghttp3_conn*, std::int64_t, void*, void*);
    static int on_stop_sending(nghttp3_conn*, std::int64_t, std::uint64_t, void*, void*);
    static int on_reset_stream(nghttp3_conn*, std::int64_t, std::uint64_t, void*, void*);
    static nghttp3_ssize read_body(nghttp3_conn*, std::int64_t, nghttp3_vec*, std::size_t, std::uint32_t*, void*,
                                   void*);

    Connection& connection_;
    Handler& handler_;
    nghttp3_conn* http_ = nullptr;
    bool server_ = false;
    std::vector<std::int64_t> blocked_;     // streams nghttp3 holds back until our ring or credit has room
    std::vector<std::int64_t> requests_;    // bidirectional streams nghttp3 knows of, until our table frees them
    // Requests being parsed (server), by stream: a header section may arrive over several reads.
    std::unordered_map<std::int64_t, std::pair<std::string, std::string>> parsing_;
};

}  // namespace cf::quic::h3
