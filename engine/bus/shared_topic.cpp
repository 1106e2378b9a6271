#include "engine/bus/shared_topic.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>

#include "platform/os/last_error.hpp"

namespace cf::bus {
namespace {

using platform::fail;

// Re-raises the last failure with the topic's name in front, so a user learns which topic and what exactly.
int fail_for_topic(int status, const char* topic) noexcept {
    char detail[400];
    std::snprintf(detail, sizeof detail, "%s", platform::last_error_message());
    return fail(-status, "shared topic '%s': %s", topic, detail);
}

// "topic.<name>" into `out`: 0, or -EINVAL with a message for a name no topic can have.
int segment_name_of(const char* topic, char (&out)[ShmSegment::kMaxNameLength + 1]) noexcept {
    if (topic == nullptr || topic[0] == '\0' || strnlen(topic, kMaxTopicNameLength + 1) > kMaxTopicNameLength) {
        return fail(EINVAL, "shared topic: the name is empty, NULL or longer than %zu characters", kMaxTopicNameLength);
    }
    std::snprintf(out, sizeof out, "topic.%s", topic);
    return ShmSegment::check_name(out);
}

// Reads `bytes` at `offset`: true if all of them came.
bool read_at(int fd, void* into, std::size_t bytes, off_t offset) noexcept {
    return ::pread(fd, into, bytes, offset) == static_cast<ssize_t>(bytes);
}

// The magic and layout version of a segment, topic or ring header (each starts with its magic).
template <class Header>
bool read_version(int fd, off_t header_offset, std::uint64_t magic, std::uint32_t& version) noexcept {
    std::uint64_t found = 0;
    std::uint32_t found_version = 0;
    if (!read_at(fd, &found, sizeof found, header_offset) ||
        !read_at(fd, &found_version, sizeof found_version,
                 header_offset + static_cast<off_t>(offsetof(Header, layout_version))) ||
        found != magic) {
        return false;
    }
    version = found_version;
    return true;
}

}  // namespace

SharedTopicLayout SharedTopic::local_layout() noexcept {
    return SharedTopicLayout{ShmSegment::kLayoutVersion, kTopicLayoutVersion, kRingLayoutVersion};
}

int SharedTopic::read_layout(const char* name, std::uint32_t owner_uid, SharedTopicLayout& out) noexcept {
    char segment_name[ShmSegment::kMaxNameLength + 1];
    if (const int status = segment_name_of(name, segment_name); status != 0) return status;
    char path[ShmSegment::kMaxPathLength + 1];
    if (const int status = ShmSegment::path_of(segment_name, owner_uid, path, sizeof path); status != 0) return status;
    // Read-only, no symbolic links, never blocking on a FIFO: the file may be anybody's doing.
    const int fd = ::open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        const int err = errno;
        if (err == ENOENT) return fail(ENOENT, "shared topic '%s': no segment %s", name, path);
        if (err == ELOOP) return fail(EACCES, "shared topic '%s': %s is a symbolic link", name, path);
        return fail(err, "shared topic '%s': cannot open %s: %s", name, path, std::strerror(err));
    }
    struct stat st{};
    const std::uint32_t owner = owner_uid == kShmOwnerSelf ? static_cast<std::uint32_t>(::geteuid()) : owner_uid;
    int status = 0;
    SharedTopicLayout layout;
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != owner) {
        status = fail(EACCES, "shared topic '%s': %s is not a regular file of uid %u", name, path, owner);
    } else if (!read_version<ShmHeader>(fd, 0, kShmMagic, layout.segment_version)) {
        status = fail(EPROTO, "shared topic '%s': %s is not a chronofabric segment", name, path);
    } else {
        // Where the topic sits is known only in this library's segment layout.
        if (layout.segment_version == ShmSegment::kLayoutVersion) {
            constexpr auto kTopicAt = static_cast<off_t>(ShmSegment::kPayloadOffset);
            if (read_version<TopicHeader>(fd, kTopicAt, kTopicMagic, layout.topic_version)) {
                (void)read_version<RingHeader>(fd, kTopicAt + static_cast<off_t>(kTopicRingOffset), kRingMagic,
                                               layout.ring_version);
            }
        }
        out = layout;
    }
    ::close(fd);
    return status;
}

int SharedTopic::open_existing(const char* name, std::uint32_t mode, SharedTopic& out,
                               std::uint32_t owner_uid) noexcept {
    out.close();
    char segment_name[ShmSegment::kMaxNameLength + 1];
    if (const int status = segment_name_of(name, segment_name); status != 0) return status;
    // The layout id to expect is the one the segment names; attach() still validates the header it sits in, and
    // the topic's own configuration must produce the same id below.
    std::uint64_t layout_id = 0;
    char path[ShmSegment::kMaxPathLength + 1];
    if (ShmSegment::path_of(segment_name, owner_uid, path, sizeof path) == 0) {
        const int fd = ::open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd >= 0) {
            (void)read_at(fd, &layout_id, sizeof layout_id, static_cast<off_t>(offsetof(ShmHeader, layout_id)));
            ::close(fd);
        }
    }
    SharedTopic shared;
    const std::uint32_t wanted_mode = mode == 0 ? 0600 : mode;
    int status = ShmSegment::attach(segment_name, layout_id, shared.segment_, kShmDefaultWaitTimeout, wanted_mode,
                                    owner_uid);
    if (status != 0) return fail_for_topic(status, name);
    if ((status = adopt_segment(shared, name)) != 0) return status;
    const Topic& topic = shared.topic_;
    TopicConfig config;
    config.name = topic.name();
    config.max_message_bytes = topic.max_message_bytes();
    config.depth = topic.depth();
    config.max_publishers = topic.max_publishers();
    config.max_subscribers = topic.max_subscribers();
    config.overflow = topic.overflow();
    if (topic_layout_id(config) != shared.segment_.layout_id()) {
        return fail(EPROTO, "shared topic '%s': its layout id does not follow from its configuration: created by a "
                            "library with another ring layout", name);
    }
    out = static_cast<SharedTopic&&>(shared);
    return 0;
}

int SharedTopic::adopt_segment(SharedTopic& shared, const char* topic_name) noexcept {
    int status = Topic::attach(shared.segment_.payload(), shared.segment_.payload_bytes(), shared.topic_);
    if (status == 0) {
        status = shared.segment_.processes().register_self(ProcessTable::monotonic_ns(), 0, 0, shared.ticket_);
    }
    if (status != 0) {
        // Ours and nobody else's yet: remove it again rather than leave it behind for the next run to reset.
        if (shared.segment_.is_creator()) (void)shared.segment_.unlink();
        return fail_for_topic(status, topic_name);
    }
    return 0;
}

int SharedTopic::open(const TopicConfig& config, std::uint32_t mode, SharedTopic& out,
                      std::uint32_t owner_uid) noexcept {
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
    segment_config.owner_uid = owner_uid;
    // Another user's topic is theirs to create: attach only.
    const bool own = owner_uid == kShmOwnerSelf || owner_uid == static_cast<std::uint32_t>(::geteuid());
    int status = own ? ShmSegment::create(segment_config, shared.segment_) : -EEXIST;
    if (status == 0) {
        status = Topic::format(shared.segment_.payload(), shared.segment_.payload_bytes(), config);
        if (status == 0) status = shared.segment_.mark_ready();
        if (status != 0) {
            (void)shared.segment_.unlink();
            return status;
        }
    } else if (status == -EEXIST) {
        // A living process made it: use it, if it is the same topic (the segment's message says what differs:
        // another configuration, another library version, or a corrupt header).
        status = ShmSegment::attach(segment_name, layout_id, shared.segment_, kShmDefaultWaitTimeout,
                                    segment_config.mode, owner_uid);
        if (status != 0) return fail_for_topic(status, config.name);
    } else {
        return fail_for_topic(status, config.name);
    }
    if ((status = adopt_segment(shared, config.name)) != 0) return status;
    out = static_cast<SharedTopic&&>(shared);
    return 0;
}

SharedTopic& SharedTopic::operator=(SharedTopic&& other) noexcept {
    if (this == &other) return *this;
    close();
    segment_ = static_cast<ShmSegment&&>(other.segment_);
    topic_ = other.topic_;
    ticket_ = other.ticket_;
    other.topic_ = Topic{};
    other.ticket_ = ProcessTicket{};
    return *this;
}

EndpointHolder SharedTopic::holder() const noexcept {
    return process_holder(ticket_.index, ProcessTable::sequence_of(ticket_.word));
}

void SharedTopic::free_places(EndpointHolder holder, MaintainReport& report) noexcept {
    TopicHeader& header = topic_.header();
    BroadcastRing broadcast;
    const bool is_broadcast = topic_.kind() == RingKind::broadcast &&
                              BroadcastRing::attach(topic_.ring_memory(), topic_.ring_bytes(), broadcast) == 0;
    report.publishers_freed += reclaim_places(header, EndpointRole::publisher, holder, [](std::uint32_t) {});
    report.subscribers_freed += reclaim_places(header, EndpointRole::subscriber, holder, [&](std::uint32_t place) {
        // -EINVAL: the holder died after taking the place, before joining as reader `place`.
        if (is_broadcast && broadcast.remove_reader(static_cast<int>(place)) == 0) ++report.readers_removed;
    });
}

void SharedTopic::close() noexcept {
    if (segment_.valid() && ticket_.valid()) {
        MaintainReport ignored;
        if (topic_.valid()) free_places(holder(), ignored);
        (void)segment_.processes().deregister(ticket_);
    }
    ticket_ = ProcessTicket{};
    topic_ = Topic{};
    segment_.detach();
}

int SharedTopic::open_publisher(HybridLogicalClock& clock, Publisher& out) noexcept {
    if (!valid()) return fail(EINVAL, "shared topic: not open");
    return Publisher::open(topic_, clock, holder(), out);
}

int SharedTopic::open_subscriber(Subscriber& out) noexcept {
    if (!valid()) return fail(EINVAL, "shared topic: not open");
    return Subscriber::open(topic_, holder(), out);
}

void SharedTopic::close_publisher(Publisher& publisher) noexcept { publisher.close(); }

void SharedTopic::close_subscriber(Subscriber& subscriber) noexcept { subscriber.close(); }

std::uint32_t SharedTopic::publishers() const noexcept {
    return valid() ? places_taken(topic_.header(), EndpointRole::publisher) : 0;
}

std::uint32_t SharedTopic::subscribers() const noexcept {
    return valid() ? places_taken(topic_.header(), EndpointRole::subscriber) : 0;
}

int SharedTopic::maintain(std::uint64_t heartbeat_timeout_ns, MaintainReport& report) noexcept {
    report = MaintainReport{};
    if (!valid()) return fail(EINVAL, "shared topic: not open");
    ProcessTable& table = segment_.processes();
    const std::uint64_t now = ProcessTable::monotonic_ns();
    if (table.heartbeat(ticket_, now) != 0) {
        return fail(ESTALE, "shared topic '%s': this process was reclaimed as dead; reopen it", topic_.name());
    }
    // The scan calls back while it holds the dead entry (reclaiming), so no other scanner frees the same places.
    const ScanCounts counts = table.scan(now, heartbeat_timeout_ns, [&](const ScanReport& dead) {
        if (dead.verdict == ProcessVerdict::stale_alive) return;
        free_places(process_holder(dead.index, dead.sequence), report);
    });
    report.dead_processes = counts.reclaimed;
    report.stale_alive = counts.stale_alive;
    return 0;
}

}  // namespace cf::bus
