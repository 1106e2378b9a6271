// Messages on one long-lived stream, the fix for "a new stream per message": a channel opens its stream once and
// every message goes on it as a varint length (RFC 9000 section 16) followed by the payload, in order.
//
// Writing is all or nothing: a message that does not fit in the stream's send ring right now is refused with
// -EAGAIN and nothing is written, so a message is never split by back-pressure. Reading hands out a complete
// message in place when it is contiguous in the receive ring, or copied into the reader's scratch when it wraps
// around the ring's end (the only copy). A length above the channel's maximum is untrusted input gone wrong: the
// reader refuses it (-EMSGSIZE) and stays broken, and the connection resets the stream.
#pragma once

#include <cstddef>
#include <cstdint>

#include "engine/quic/receive_buffer.hpp"
#include "engine/quic/send_buffer.hpp"

namespace cf::quic {

// Appends one message. 0, -EAGAIN (no room for all of it now), or -EMSGSIZE (above max_message_bytes).
int write_message(SendBuffer& stream, const void* data, std::size_t length, std::uint32_t max_message_bytes) noexcept;

class MessageReader {
public:
    // `scratch` holds max_message_bytes (the caller keeps it alive).
    void init(std::uint8_t* scratch, std::uint32_t max_message_bytes) noexcept {
        scratch_ = scratch;
        max_ = max_message_bytes;
        pending_ = 0;
        broken_ = false;
    }
    // The next complete message: 1 with `data`/`length` set (valid until release() or the next call, which releases
    // it first), 0 if none is complete yet,
    // -EMSGSIZE if the stream announced a message above the maximum (the reader stays broken).
    int next(ReceiveBuffer& stream, const std::uint8_t*& data, std::size_t& length) noexcept;
    // Frees the message next() returned, and its length prefix.
    void release(ReceiveBuffer& stream) noexcept {
        stream.consume(pending_);
        pending_ = 0;
    }
    bool broken() const noexcept { return broken_; }

private:
    std::uint8_t* scratch_ = nullptr;
    std::uint32_t max_ = 0;
    std::size_t pending_ = 0;   // bytes next() handed out, header included
    bool broken_ = false;
};

}  // namespace cf::quic
