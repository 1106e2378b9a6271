#include "tests/quic/h3/h3_session.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

namespace cf::quic::h3 {

namespace {

constexpr std::size_t kVectors = 16;

std::string text_of(nghttp3_rcbuf* buffer) {
    const nghttp3_vec v = nghttp3_rcbuf_get_buf(buffer);
    return std::string(reinterpret_cast<const char*>(v.base), v.len);
}

nghttp3_nv header(const char* name, const std::string& value) {
    nghttp3_nv nv{};
    nv.name = reinterpret_cast<std::uint8_t*>(const_cast<char*>(name));
    nv.namelen = std::strlen(name);
    nv.value = reinterpret_cast<std::uint8_t*>(const_cast<char*>(value.data()));
    nv.valuelen = value.size();
    nv.flags = NGHTTP3_NV_FLAG_NONE;
    return nv;
}

Session& self(void* user) { return *static_cast<Session*>(user); }

}  // namespace

int Session::create(Connection& connection, Handler& handler, std::unique_ptr<Session>& out) {
    std::unique_ptr<Session> session(new Session(connection, handler));
    session->server_ = connection.role() == EndpointRole::server;
    nghttp3_callbacks callbacks{};
    callbacks.recv_data = on_recv_data;
    callbacks.begin_headers = on_begin_headers;
    callbacks.recv_header = on_recv_header;
    callbacks.end_headers = on_end_headers;
    callbacks.end_stream = on_end_stream;
    callbacks.stop_sending = on_stop_sending;
    callbacks.reset_stream = on_reset_stream;
    nghttp3_settings settings;
    nghttp3_settings_default(&settings);
    // A dynamic table and blocked streams, so the QPACK encoder and decoder streams carry something.
    settings.qpack_max_dtable_capacity = 4096;
    settings.qpack_blocked_streams = 100;
    int rc = session->server_
                 ? nghttp3_conn_server_new(&session->http_, &callbacks, &settings, nullptr, session.get())
                 : nghttp3_conn_client_new(&session->http_, &callbacks, &settings, nullptr, session.get());
    if (rc != 0) {
        std::fprintf(stderr, "h3: nghttp3_conn_*_new: %s\n", nghttp3_strerror(rc));
        return rc;
    }
    if (session->server_) {
        // The transport enforces how many streams the client has open at once; nghttp3 only checks IDs.
        nghttp3_conn_set_max_client_streams_bidi(session->http_, std::uint64_t{1} << 40);
    }
    StreamTable& streams = connection.streams();
    std::int64_t ids[3];
    for (std::int64_t& id : ids) {
        id = streams.open_stream(StreamDirection::unidirectional);
        if (id < 0) {
            std::fprintf(stderr, "h3: cannot open a unidirectional stream (%s): the peer must allow 3\n",
                         std::strerror(static_cast<int>(-id)));
            return static_cast<int>(id);
        }
    }
    rc = nghttp3_conn_bind_control_stream(session->http_, ids[0]);
    if (rc == 0) rc = nghttp3_conn_bind_qpack_streams(session->http_, ids[1], ids[2]);
    if (rc != 0) {
        std::fprintf(stderr, "h3: binding the control and QPACK streams: %s\n", nghttp3_strerror(rc));
        return rc;
    }
    out = std::move(session);
    return 0;
}

Session::~Session() {
    if (http_ != nullptr) nghttp3_conn_del(http_);
}

void Session::fail(int error, const char* what) {
    std::fprintf(stderr, "h3: %s: %s\n", what, nghttp3_strerror(error));
    if (!connection_.closed()) {
        connection_.close(nghttp3_err_infer_quic_app_error_code(error), true, nghttp3_strerror(error));
    }
}

int Session::pump() {
    if (connection_.closed()) return 0;
    int rc = read_streams();
    if (rc == 0) rc = retire_closed();
    if (rc == 0) rc = write_streams();
    return rc;
}

int Session::read_streams() {
    StreamTable& streams = connection_.streams();
    StreamId id = 0;
    while (streams.next_readable(id)) {
        const auto stream = static_cast<std::int64_t>(id);
        for (;;) {
            StreamReadView view;
            if (streams.read(id, view) != 0) break;   // closed meanwhile
            if (view.reset) {
                // The peer abandoned the stream: nghttp3 drops what it holds of it.
                const int rc = nghttp3_conn_shutdown_stream_read(http_, stream);
                if (rc != 0 && rc != NGHTTP3_ERR_STREAM_NOT_FOUND) {
                    fail(rc, "shutdown_stream_read");
                    return rc;
                }
                break;
            }
            const std::size_t size = view.data.size();
            if (size == 0 && !view.fin) break;
            // A wrapped ring is two pieces; nghttp3 parses a stream incrementally, so it takes them one by one.
            const bool two = view.data.second_size > 0;
            nghttp3_ssize rc = nghttp3_conn_read_stream(http_, stream, view.data.first, view.data.first_size,
                                                        view.fin && !two ? 1 : 0);
            if (rc >= 0 && two) {
                rc = nghttp3_conn_read_stream(http_, stream, view.data.second, view.data.second_size,
                                              view.fin ? 1 : 0);
            }
            if (rc < 0) {
                fail(static_cast<int>(rc), "read_stream");
                return static_cast<int>(rc);
            }
            if (size > 0) (void)streams.consume(id, size);
            if (view.fin) break;   // the receive part is done (the stream may have closed)
        }
        if (connection_.closed()) return 0;
    }
    return 0;
}

int Session::write_streams() {
    StreamTable& streams = connection_.streams();
    // Streams held back for room: go again once there is some.
    for (std::size_t i = 0; i < blocked_.size();) {
        const std::int64_t stream = blocked_[i];
        StreamStatus status;
        const bool gone = streams.status(static_cast<StreamId>(stream), status) != 0;
        if (gone || streams.send_room(static_cast<StreamId>(stream)) > 0) {
            if (!gone) {
                const int rc = nghttp3_conn_unblock_stream(http_, stream);
                if (rc != 0 && rc != NGHTTP3_ERR_STREAM_NOT_FOUND) {
                    fail(rc, "unblock_stream");
                    return rc;
                }
            }
            blocked_[i] = blocked_.back();
            blocked_.pop_back();
        } else {
            ++i;
        }
    }
    for (;;) {
        std::int64_t stream = -1;
        int fin = 0;
        nghttp3_vec vectors[kVectors];
        const nghttp3_ssize count = nghttp3_conn_writev_stream(http_, &stream, &fin, vectors, kVectors);
        if (count < 0) {
            fail(static_cast<int>(count), "writev_stream");
            return static_cast<int>(count);
        }
        if (stream < 0) return 0;
        const auto id = static_cast<StreamId>(stream);
        std::size_t taken = 0;
        bool full = false;
        bool refused = false;
        for (nghttp3_ssize i = 0; i < count && !full; ++i) {
            if (vectors[i].len == 0) continue;
            const std::int64_t n = streams.write(id, vectors[i].base, vectors[i].len);
            if (n < 0) {
                refused = true;   // the stream was reset (the peer's STOP_SENDING): nothing more goes on it
                break;
            }
            taken += static_cast<std::size_t>(n);
            full = static_cast<std::size_t>(n) < vectors[i].len;
        }
        if (refused) {
            nghttp3_conn_shutdown_stream_write(http_, stream);
            continue;
        }
        if (fin && !full) (void)streams.finish(id);
        int rc = nghttp3_conn_add_write_offset(http_, stream, taken);
        // Our ring holds its own copy now: nghttp3 may let go of these bytes.
        if (rc == 0 && taken > 0) rc = nghttp3_conn_add_ack_offset(http_, stream, taken);
        if (rc != 0) {
            fail(rc, "add_write_offset");
            return rc;
        }
        if (full) {
            nghttp3_conn_block_stream(http_, stream);
            blocked_.push_back(stream);
        }
    }
}

int Session::retire_closed() {
    StreamTable& streams = connection_.streams();
    for (std::size_t i = 0; i < requests_.size();) {
        StreamStatus status;
        if (streams.status(static_cast<StreamId>(requests_[i]), status) == 0) {
            ++i;
            continue;
        }
        const int rc = nghttp3_conn_close_stream(http_, requests_[i], NGHTTP3_H3_NO_ERROR);
        if (rc != 0 && rc != NGHTTP3_ERR_STREAM_NOT_FOUND) {
            fail(rc, "close_stream");
            return rc;
        }
        requests_[i] = requests_.back();
        requests_.pop_back();
    }
    return 0;
}

std::int64_t Session::submit_get(const std::string& authority, const std::string& path) {
    const std::int64_t stream = connection_.streams().open_stream(StreamDirection::bidirectional);
    if (stream == -EAGAIN || stream == -ENOBUFS) return -EAGAIN;
    if (stream < 0) return stream;
    // The fields point into these strings until nghttp3 copies them in the submit call: no temporaries.
    static const std::string method = "GET", scheme = "https", agent = "cf-h3-peer";
    const nghttp3_nv headers[] = {
        header(":method", method), header(":scheme", scheme), header(":authority", authority),
        header(":path", path), header("user-agent", agent),
    };
    const int rc = nghttp3_conn_submit_request(http_, stream, headers, std::size(headers), nullptr, nullptr);
    if (rc != 0) {
        fail(rc, "submit_request");
        return rc;
    }
    requests_.push_back(stream);
    return stream;
}

int Session::submit_response(std::int64_t stream, int status, std::uint64_t content_length, bool body) {
    static const std::string agent = "cf-h3-peer";
    const std::string code = std::to_string(status), length = std::to_string(content_length);
    const nghttp3_nv headers[] = {
        header(":status", code), header("server", agent), header("content-length", length),
    };
    nghttp3_data_reader reader{read_body};
    const int rc = nghttp3_conn_submit_response(http_, stream, headers, std::size(headers), body ? &reader : nullptr);
    if (rc != 0) fail(rc, "submit_response");
    return rc;
}

void Session::close(const char* reason) {
    if (connection_.closed()) return;
    (void)nghttp3_conn_shutdown(http_);
    (void)write_streams();
    connection_.close(NGHTTP3_H3_NO_ERROR, true, reason);
}

// --- nghttp3's callbacks ---------------------------------------------------------------------------------------

int Session::on_recv_data(nghttp3_conn*, std::int64_t stream, const std::uint8_t* data, std::size_t size,
                          void* user, void*) {
    self(user).handler_.on_body(stream, data, size);
    return 0;
}

int Session::on_begin_headers(nghttp3_conn*, std::int64_t stream, void* user, void*) {
    Session& s = self(user);
    if (s.server_) {
        s.parsing_[stream] = {};
        if (std::find(s.requests_.begin(), s.requests_.end(), stream) == s.requests_.end()) {
            s.requests_.push_back(stream);
        }
    }
    return 0;
}

int Session::on_recv_header(nghttp3_conn*, std::int64_t stream, std::int32_t token, nghttp3_rcbuf*,
                            nghttp3_rcbuf* value, std::uint8_t, void* user, void*) {
    Session& s = self(user);
    if (s.server_) {
        auto& request = s.parsing_[stream];
        if (token == NGHTTP3_QPACK_TOKEN__METHOD) request.first = text_of(value);
        if (token == NGHTTP3_QPACK_TOKEN__PATH) request.second = text_of(value);
    } else if (token == NGHTTP3_QPACK_TOKEN__STATUS) {
        const std::string text = text_of(value);
        int status = 0;
        for (const char c : text) status = c >= '0' && c <= '9' && status < 1000 ? status * 10 + (c - '0') : -1;
        s.handler_.on_status(stream, status);
    }
    return 0;
}

int Session::on_end_headers(nghttp3_conn*, std::int64_t stream, int, void* user, void*) {
    Session& s = self(user);
    if (s.server_) {
        const auto request = s.parsing_[stream];
        s.parsing_.erase(stream);
        s.handler_.on_request(stream, request.first, request.second);
    }
    return 0;
}

int Session::on_end_stream(nghttp3_conn*, std::int64_t stream, void* user, void*) {
    self(user).handler_.on_end(stream);
    return 0;
}

int Session::on_stop_sending(nghttp3_conn*, std::int64_t stream, std::uint64_t code, void* user, void*) {
    (void)self(user).connection_.streams().stop_sending(static_cast<StreamId>(stream), code);
    return 0;
}

int Session::on_reset_stream(nghttp3_conn*, std::int64_t stream, std::uint64_t code, void* user, void*) {
    (void)self(user).connection_.streams().reset(static_cast<StreamId>(stream), code);
    return 0;
}

nghttp3_ssize Session::read_body(nghttp3_conn*, std::int64_t stream, nghttp3_vec* vectors, std::size_t count,
                                 std::uint32_t* flags, void* user, void*) {
    if (count == 0) return 0;
    const std::uint8_t* data = nullptr;
    std::size_t size = 0;
    bool eof = false;
    self(user).handler_.body_chunk(stream, data, size, eof);
    if (eof) *flags |= NGHTTP3_DATA_FLAG_EOF;
    if (size == 0) return 0;
    vectors[0].base = const_cast<std::uint8_t*>(data);
    vectors[0].len = size;
    return 1;
}

}  // namespace cf::quic::h3
