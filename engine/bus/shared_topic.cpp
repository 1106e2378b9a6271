#include "engine/bus/shared_topic.hpp"

#include <cerrno>
#include <cstdio>

#include "platform/os/last_error.hpp"

namespace cf::bus {
namespace {

using platform::fail;

constexpr std::uint64_t kCountMask = 0xffffffffULL;

std::uint64_t pack_counts(std::uint32_t publishers, std::uint32_t subscribers) noexcept {
    return std::uint64_t{publishers} | (std::uint64_t{subscribers} << 32);
}

}  // namespace

int SharedTopic::open(const TopicConfig& config, std::uint32_t mode, SharedTopic& out) noexcept {
    out.close();
    const std::size_t bytes = Topic::bytes_needed(config);
    if (bytes == 0) return -EINVAL;   // message set by the check
    char segment_name[ShmSegment::kMaxNameLength + 1];
    std::snprintf(segment_name, sizeof segment_name, "topic.%s", config.name);
    const std::uint64_t layout_id = topic_layout_id(config);

    SharedTopic shared;
    ShmSegmentConfig segment_config;
    segment_config.name = segment_name;
    segment_config.payload_bytes = bytes;
    segment_config.layout_id = layout_id;
    segment_config.mode = mode == 0 ? 0600 : mode;
    segment_config.if_exists = ShmIfExists::reset_if_stale;
    int status = ShmSegment::create(segment_config, shared.segment_);
    if (status == 0) {
        status = Topic::format(shared.segment_.payload(), shared.segment_.payload_bytes(), config);
        if (status == 0) status = shared.segment_.mark_ready();
        if (status != 0) {
            (void)shared.segment_.unlink();
            return status;
        }
    } else if (status == -EEXIST) {
        // A living process made it: use it, if it is the same topic.
        status = ShmSegment::attach(segment_name, layout_id, shared.segment_);
        if (status == -EPROTO) {
            return fail(EPROTO, "shared topic '%s' exists with another configuration or library version: "
                                "max_message_bytes, depth, max_publishers, max_subscribers and overflow must match",
                        config.name);
        }
        if (status != 0) return status;
    } else {
        return status;
    }
    status = Topic::attach(shared.segment_.payload(), shared.segment_.payload_bytes(), shared.topic_);
    if (status != 0) return status;
    status = shared.segment_.processes().register_self(ProcessTable::monotonic_ns(), 0, 0, shared.ticket_);
    if (status != 0) {
        return fail(-status, "shared topic '%s': cannot register this process (%d processes at most)", config.name,
                    static_cast<int>(ProcessTable::kCapacity));
    }
    out = static_cast<SharedTopic&&>(shared);
    return 0;
}

SharedTopic& SharedTopic::operator=(SharedTopic&& other) noexcept {
    if (this == &other) return *this;
    close();
    segment_ = static_cast<ShmSegment&&>(other.segment_);
    topic_ = other.topic_;
    ticket_ = other.ticket_;
    readers_mask_ = other.readers_mask_;
    publishers_ = other.publishers_;
    subscribers_ = other.subscribers_;
    other.topic_ = Topic{};
    other.ticket_ = ProcessTicket{};
    return *this;
}

void SharedTopic::close() noexcept {
    if (segment_.valid() && ticket_.valid()) (void)segment_.processes().deregister(ticket_);
    ticket_ = ProcessTicket{};
    topic_ = Topic{};
    segment_.detach();
    readers_mask_ = 0;
    publishers_ = subscribers_ = 0;
}

void SharedTopic::record_endpoints() noexcept {
    ProcessTable& table = segment_.processes();
    (void)table.set_user(ticket_, 0, readers_mask_);
    (void)table.set_user(ticket_, 1, pack_counts(publishers_, subscribers_));
}

int SharedTopic::open_publisher(HybridLogicalClock& clock, Publisher& out) noexcept {
    if (!valid()) return fail(EINVAL, "shared topic: not open");
    const int status = Publisher::open(topic_, clock, out);
    if (status != 0) return status;
    ++publishers_;
    record_endpoints();
    return 0;
}

int SharedTopic::open_subscriber(Subscriber& out) noexcept {
    if (!valid()) return fail(EINVAL, "shared topic: not open");
    const int status = Subscriber::open(topic_, out);
    if (status != 0) return status;
    ++subscribers_;
    if (out.reader() >= 0) readers_mask_ |= std::uint64_t{1} << out.reader();
    record_endpoints();
    return 0;
}

void SharedTopic::close_publisher(Publisher& publisher) noexcept {
    if (!publisher.valid()) return;
    publisher.close();
    if (publishers_ > 0) --publishers_;
    if (valid()) record_endpoints();
}

void SharedTopic::close_subscriber(Subscriber& subscriber) noexcept {
    if (!subscriber.valid()) return;
    if (subscriber.reader() >= 0) readers_mask_ &= ~(std::uint64_t{1} << subscriber.reader());
    subscriber.close();
    if (subscribers_ > 0) --subscribers_;
    if (valid()) record_endpoints();
}

int SharedTopic::maintain(std::uint64_t heartbeat_timeout_ns, MaintainReport& report) noexcept {
    report = MaintainReport{};
    if (!valid()) return fail(EINVAL, "shared topic: not open");
    ProcessTable& table = segment_.processes();
    const std::uint64_t now = ProcessTable::monotonic_ns();
    if (table.heartbeat(ticket_, now) != 0) {
        return fail(ESTALE, "shared topic '%s': this process was reclaimed as dead; reopen it", topic_.name());
    }
    TopicHeader& header = topic_.header();
    BroadcastRing broadcast;
    const bool is_broadcast = topic_.kind() == TopicKind::broadcast &&
                              BroadcastRing::attach(topic_.ring_memory(), topic_.ring_bytes(), broadcast) == 0;
    const ScanCounts counts = table.scan(now, heartbeat_timeout_ns, [&](const ScanReport& dead) {
        if (dead.verdict == ProcessVerdict::stale_alive) return;
        // What the dead process held: its places among the publishers and subscribers, its broadcast readers.
        const auto publishers = static_cast<std::uint32_t>(dead.user[1] & kCountMask);
        const auto subscribers = static_cast<std::uint32_t>(dead.user[1] >> 32);
        header.publishers.fetch_sub(publishers, std::memory_order_acq_rel);
        header.subscribers.fetch_sub(subscribers, std::memory_order_acq_rel);
        for (int reader = 0; reader < 64 && is_broadcast; ++reader) {
            if ((dead.user[0] >> reader & 1) != 0 && broadcast.remove_reader(reader) == 0) ++report.readers_removed;
        }
    });
    report.dead_processes = counts.reclaimed;
    report.stale_alive = counts.stale_alive;
    return 0;
}

}  // namespace cf::bus
