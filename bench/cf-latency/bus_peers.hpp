// The queues the bus scenarios measure ours against, behind one small compile-time interface so every
// contender runs through the same measuring loop (no virtual calls):
//
//   bool ok() const;                         set up, else error() says why
//   bool try_send(stamp, sequence);          one message of N bytes, stamp and sequence in its first 16 bytes
//   bool try_receive(stamp&, sequence&);     the next message, if any; reads its first and last bytes
//
// Copying queues (Boost, moodycamel, ZeroMQ) copy the whole message in and out, as their users do; the message
// is built once by the producer and copied by the queue.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

#include <boost/lockfree/spsc_queue.hpp>
#include <readerwriterqueue/readerwriterqueue.h>

#if CF_HAVE_ZMQ
#include <zmq.h>
#endif

namespace cf::latency {

template <std::size_t N>
struct alignas(64) BusMessage {
    static_assert(N >= 16);
    std::uint64_t stamp;
    std::uint64_t sequence;
    std::byte body[N - 16];
};

// Reads what a consumer of the message would at least touch: the header and the last byte.
template <std::size_t N>
inline void read_message(const std::byte* message, std::uint64_t& stamp, std::uint64_t& sequence) noexcept {
    std::memcpy(&stamp, message, 8);
    std::memcpy(&sequence, message + 8, 8);
    volatile std::byte last = message[N - 1];
    (void)last;
}

// Burst channels (the bus-throughput burst rows) send up to kBurst messages per call and receive a burst at a
// time, handing the messages out one by one from a small local copy of their headers:
//   std::uint32_t try_send_burst(first_sequence);   how many were sent (sequences first_sequence, +1, ...)
//   bool try_receive(stamp&, sequence&);
inline constexpr std::uint32_t kBurst = 32;

class BurstInbox {
public:
    template <class Refill>
    bool take(std::uint64_t& stamp, std::uint64_t& sequence, Refill&& refill) noexcept {
        if (next_ == count_) {
            next_ = 0;
            count_ = refill(stamps_, sequences_);
            if (count_ == 0) return false;
        }
        stamp = stamps_[next_];
        sequence = sequences_[next_++];
        return true;
    }

private:
    std::uint32_t next_ = 0, count_ = 0;
    std::uint64_t stamps_[kBurst], sequences_[kBurst];
};

// Boost's spsc_queue moves arrays in and out with push(const T*, n) / pop(T*, n).
template <std::size_t N>
class BoostSpscBurstChannel {
public:
    static constexpr const char* kName = "boost::lockfree::spsc_queue push/pop of arrays";
    explicit BoostSpscBurstChannel(std::uint32_t depth) : queue_(std::make_unique<Queue>(depth)) {
        std::memset(outgoing_, 0x5a, sizeof outgoing_);
        for (BusMessage<N>& message : outgoing_) message.stamp = 0;   // throughput reads it as the producer
    }
    bool ok() const { return true; }
    std::string error() const { return {}; }
    std::uint32_t try_send_burst(std::uint64_t first_sequence) noexcept {
        for (std::uint32_t i = 0; i < kBurst; ++i) outgoing_[i].sequence = first_sequence + i;
        return static_cast<std::uint32_t>(queue_->push(outgoing_, kBurst));
    }
    bool try_receive(std::uint64_t& stamp, std::uint64_t& sequence) noexcept {
        return inbox_.take(stamp, sequence, [&](std::uint64_t* stamps, std::uint64_t* sequences) {
            const auto count = static_cast<std::uint32_t>(queue_->pop(incoming_, kBurst));
            for (std::uint32_t i = 0; i < count; ++i) {
                read_message<N>(reinterpret_cast<const std::byte*>(&incoming_[i]), stamps[i], sequences[i]);
            }
            return count;
        });
    }

private:
    using Queue = boost::lockfree::spsc_queue<BusMessage<N>>;
    std::unique_ptr<Queue> queue_;
    BusMessage<N> outgoing_[kBurst];
    BusMessage<N> incoming_[kBurst];
    BurstInbox inbox_;
};

template <std::size_t N>
class BoostSpscChannel {
public:
    static constexpr const char* kName = "boost::lockfree::spsc_queue";
    explicit BoostSpscChannel(std::uint32_t depth) : queue_(std::make_unique<Queue>(depth)) {
        std::memset(&outgoing_, 0x5a, sizeof outgoing_);
    }
    bool ok() const { return true; }
    std::string error() const { return {}; }
    bool try_send(std::uint64_t stamp, std::uint64_t sequence) noexcept {
        outgoing_.stamp = stamp;
        outgoing_.sequence = sequence;
        return queue_->push(outgoing_);
    }
    bool try_receive(std::uint64_t& stamp, std::uint64_t& sequence) noexcept {
        if (!queue_->pop(incoming_)) return false;
        read_message<N>(reinterpret_cast<const std::byte*>(&incoming_), stamp, sequence);
        return true;
    }

private:
    using Queue = boost::lockfree::spsc_queue<BusMessage<N>>;  // run-time capacity, one allocation at start
    std::unique_ptr<Queue> queue_;
    alignas(64) BusMessage<N> outgoing_;
    alignas(64) BusMessage<N> incoming_;
};

template <std::size_t N>
class MoodycamelChannel {
public:
    static constexpr const char* kName = "moodycamel::ReaderWriterQueue";
    explicit MoodycamelChannel(std::uint32_t depth) : queue_(depth) { std::memset(&outgoing_, 0x5a, sizeof outgoing_); }
    bool ok() const { return true; }
    std::string error() const { return {}; }
    bool try_send(std::uint64_t stamp, std::uint64_t sequence) noexcept {
        outgoing_.stamp = stamp;
        outgoing_.sequence = sequence;
        return queue_.try_enqueue(outgoing_);  // never allocates: fails when the preallocated block is full
    }
    bool try_receive(std::uint64_t& stamp, std::uint64_t& sequence) noexcept {
        if (!queue_.try_dequeue(incoming_)) return false;
        read_message<N>(reinterpret_cast<const std::byte*>(&incoming_), stamp, sequence);
        return true;
    }

private:
    moodycamel::ReaderWriterQueue<BusMessage<N>> queue_;
    alignas(64) BusMessage<N> outgoing_;
    alignas(64) BusMessage<N> incoming_;
};

#if CF_HAVE_ZMQ
// A ZeroMQ PAIR socket pair (inproc:// or ipc://), polled without blocking (ZMQ_DONTWAIT) so that it spins like
// every other contender instead of paying for wake-ups. The high-water marks are set to the ring depth.
template <std::size_t N>
class ZmqChannel {
public:
    ZmqChannel(void* context, const std::string& endpoint, std::uint32_t depth) : endpoint_(endpoint) {
        std::memset(&outgoing_, 0x5a, sizeof outgoing_);
        receiver_ = zmq_socket(context, ZMQ_PAIR);
        sender_ = zmq_socket(context, ZMQ_PAIR);
        const int hwm = static_cast<int>(depth);
        if (receiver_ == nullptr || sender_ == nullptr ||
            zmq_setsockopt(receiver_, ZMQ_RCVHWM, &hwm, sizeof hwm) != 0 ||
            zmq_setsockopt(sender_, ZMQ_SNDHWM, &hwm, sizeof hwm) != 0 || zmq_bind(receiver_, endpoint.c_str()) != 0 ||
            zmq_connect(sender_, endpoint.c_str()) != 0) {
            error_ = std::string("zmq on ") + endpoint + ": " + zmq_strerror(zmq_errno());
        }
    }
    ~ZmqChannel() {
        const int linger = 0;
        for (void* socket : {sender_, receiver_}) {
            if (socket == nullptr) continue;
            zmq_setsockopt(socket, ZMQ_LINGER, &linger, sizeof linger);
            zmq_close(socket);
        }
    }
    ZmqChannel(const ZmqChannel&) = delete;
    ZmqChannel& operator=(const ZmqChannel&) = delete;

    bool ok() const { return error_.empty(); }
    std::string error() const { return error_; }
    bool try_send(std::uint64_t stamp, std::uint64_t sequence) noexcept {
        outgoing_.stamp = stamp;
        outgoing_.sequence = sequence;
        return zmq_send(sender_, &outgoing_, N, ZMQ_DONTWAIT) == static_cast<int>(N);
    }
    bool try_receive(std::uint64_t& stamp, std::uint64_t& sequence) noexcept {
        if (zmq_recv(receiver_, &incoming_, N, ZMQ_DONTWAIT) != static_cast<int>(N)) return false;
        read_message<N>(reinterpret_cast<const std::byte*>(&incoming_), stamp, sequence);
        return true;
    }

private:
    std::string endpoint_, error_;
    void* sender_ = nullptr;
    void* receiver_ = nullptr;
    alignas(64) BusMessage<N> outgoing_;
    alignas(64) BusMessage<N> incoming_;
};
#endif

}  // namespace cf::latency
