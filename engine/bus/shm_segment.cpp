#include "engine/bus/shm_segment.hpp"

#include <fcntl.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <utility>

#include "platform/os/last_error.hpp"
#include "platform/os/numa.hpp"

namespace cf {
namespace {

using platform::fail;

constexpr std::size_t kPathBytes = ShmSegment::kMaxPathLength + 1;
constexpr std::size_t kPageBytes = 4096;   // tmpfs pages; the file is a multiple of it
#ifdef MADV_POPULATE_WRITE
constexpr int kMadvisePopulateWrite = MADV_POPULATE_WRITE;
#else
constexpr int kMadvisePopulateWrite = 23;   // Linux 5.14's value; older kernels answer EINVAL (handled)
#endif
// Rounds of create()/attach() that found the name changing under them (reset, unlinked) before giving up.
// Rounds that wait for a creator between two syscalls are bounded by the deadline instead.
constexpr int kMaxRounds = 64;

enum Resolution { kRetry = 1, kWasReset = 2, kWaited = 3 };

std::uint32_t resolve_owner(std::uint32_t owner_uid) {
    return owner_uid == kShmOwnerSelf ? static_cast<std::uint32_t>(::geteuid()) : owner_uid;
}

void directory_path(std::uint32_t owner, char (&path)[kPathBytes]) {
    std::snprintf(path, sizeof path, "%s/chronofabric-%u", ShmSegment::kRootDirectory, owner);
}

void object_path(std::uint32_t owner, const char* name, char (&path)[kPathBytes]) {
    std::snprintf(path, sizeof path, "%s/chronofabric-%u/%s", ShmSegment::kRootDirectory, owner, name);
}

// Every open of a segment file: never through a symbolic link, never blocking (a FIFO put there would).
constexpr int kOpenFlags = O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK;

// "uid 1000 (alice)", or "uid 1000" when the name cannot be looked up. Set-up path only (NSS may read files).
struct UserName {
    char text[96];
    explicit UserName(std::uint32_t uid) {
        passwd entry{};
        passwd* found = nullptr;
        char buffer[1024];
        if (::getpwuid_r(static_cast<uid_t>(uid), &entry, buffer, sizeof buffer, &found) == 0 && found != nullptr) {
            std::snprintf(text, sizeof text, "uid %u (%s)", uid, found->pw_name);
        } else {
            std::snprintf(text, sizeof text, "uid %u", uid);
        }
    }
};

// The mode bits a process that asked for `mode` accepts on a segment: those and nothing wider.
bool mode_within(mode_t actual, std::uint32_t mode) { return (actual & 07777 & ~static_cast<mode_t>(mode)) == 0; }

// The directory holds the owner's segments: it must be the owner's, a real directory, and writable by nobody
// else, so no other user can create, replace or remove a name inside it (names are not squattable there).
int check_directory(const struct stat& st, std::uint32_t owner, const char* path, const char* name) {
    if (!S_ISDIR(st.st_mode) || st.st_uid != owner || (st.st_mode & 0022) != 0) {
        const UserName holder(st.st_uid);
        return fail(EACCES, "segment '%s': %s is in the way: it belongs to %s with mode 0%o and is %s; segments "
                            "of uid %u need a directory of their own that nobody else can write (remove it, as "
                            "root if need be)", name, path, holder.text, static_cast<unsigned>(st.st_mode & 07777),
                    !S_ISDIR(st.st_mode)    ? "not a directory"
                    : st.st_uid != owner    ? "another user's"
                                            : "writable by others",
                    owner);
    }
    return 0;
}

// Checks (and for the owner's create, makes) the owner's segment directory. 0 or -errno. Once checked, paths
// inside it are safe to use by name: nobody else can change what they lead to. With `keep`, the directory stays
// open there (the caller closes it); otherwise it is closed.
int check_owner_directory(std::uint32_t owner, std::uint32_t mode, bool create, const char* name,
                          int* keep = nullptr) {
    char path[kPathBytes];
    directory_path(owner, path);
    const bool own = owner == static_cast<std::uint32_t>(::geteuid());
    if (create && own && ::mkdir(path, 0700) != 0 && errno != EEXIST) {
        const int err = errno;
        return fail(err, "segment '%s': cannot make the directory %s: %s", name, path, std::strerror(err));
    }
    const int dir = ::open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dir < 0) {
        const int err = errno;
        struct stat st{};
        if ((err == ELOOP || err == ENOTDIR) && ::lstat(path, &st) == 0) return check_directory(st, owner, path, name);
        if (err == ENOENT) return fail(ENOENT, "no segment '%s' (%s does not exist: nothing created yet)", name, path);
        return fail(err, "segment '%s': cannot open the directory %s: %s", name, path, std::strerror(err));
    }
    struct stat st{};
    if (::fstat(dir, &st) != 0) {
        const int err = errno;
        ::close(dir);
        return fail(err, "segment '%s': fstat of %s failed: %s", name, path, std::strerror(err));
    }
    int status = check_directory(st, owner, path, name);
    // Group or other users the segment is shared with must be able to pass through (never to write).
    const mode_t search = ((mode & 0060) != 0 ? 0010 : 0) | ((mode & 0006) != 0 ? 0001 : 0);
    if (status == 0 && create && own && (st.st_mode & search) != search) {
        (void)::fchmod(dir, (st.st_mode & 07777) | search);
    }
    if (status == 0 && keep != nullptr) {
        *keep = dir;
    } else {
        ::close(dir);
    }
    return status;
}

// A segment file must be a regular file of the expected owner with no permission beyond what was asked for:
// otherwise another user (or a chown/chmod) could feed this process messages it never meant to accept.
int check_object(int fd, std::uint32_t owner, std::uint32_t mode, const char* name, const char* path) {
    struct stat st{};
    if (::fstat(fd, &st) != 0) {
        const int err = errno;
        return fail(err, "segment '%s': fstat failed: %s", name, std::strerror(err));
    }
    if (!S_ISREG(st.st_mode) || st.st_uid != owner || !mode_within(st.st_mode, mode)) {
        const UserName holder(st.st_uid);
        return fail(EACCES, "segment '%s' (%s) belongs to %s with mode 0%o%s; this process accepts only uid %u "
                            "and mode 0%o or narrower: refused", name, path, holder.text,
                    static_cast<unsigned>(st.st_mode & 07777), S_ISREG(st.st_mode) ? "" : " and is not a file",
                    owner, mode);
    }
    return 0;
}

std::uint64_t now_ns() { return ProcessTable::monotonic_ns(); }

std::uint64_t deadline_after(Duration timeout) {
    std::int64_t ns = 0;
    if (!timeout.to_nanos(ns)) ns = timeout > Duration::zero() ? INT64_MAX : 0;
    if (ns < 0) ns = 0;
    return now_ns() + static_cast<std::uint64_t>(ns);
}

long long millis(Duration timeout) {
    std::int64_t ns = 0;
    return timeout.to_nanos(ns) ? static_cast<long long>(ns / 1'000'000) : -1;
}

// Set-up waits are short (another process is between two syscalls), so a fine sleep, not a spin.
void sleep_briefly() {
    const timespec pause{0, 200'000};
    ::nanosleep(&pause, nullptr);
}

std::uint64_t header_checksum(const ShmHeader& header) {
    const auto* bytes = reinterpret_cast<const unsigned char*>(&header);
    std::uint64_t hash = 0xcbf29ce484222325;   // FNV-1a
    for (std::size_t i = 0; i < offsetof(ShmHeader, checksum); ++i) {
        hash ^= bytes[i];
        hash *= 0x100000001b3;
    }
    return hash;
}

std::size_t round_up(std::size_t value, std::size_t multiple) { return (value + multiple - 1) / multiple * multiple; }

// Closes a descriptor (which also drops any flock held through it) unless released.
class FdGuard {
public:
    explicit FdGuard(int fd) : fd_(fd) {}
    ~FdGuard() {
        if (fd_ >= 0) ::close(fd_);
    }
    FdGuard(const FdGuard&) = delete;
    FdGuard& operator=(const FdGuard&) = delete;
    int release() { return std::exchange(fd_, -1); }

private:
    int fd_;
};

class MapGuard {
public:
    MapGuard(void* base, std::size_t bytes) : base_(base), bytes_(bytes) {}
    ~MapGuard() {
        if (base_ != nullptr) ::munmap(base_, bytes_);
    }
    MapGuard(const MapGuard&) = delete;
    MapGuard& operator=(const MapGuard&) = delete;
    void release() { base_ = nullptr; }

private:
    void* base_;
    std::size_t bytes_;
};

// flock with a deadline: the name's lock serialises creating, inspecting, resetting and unlinking. It is held
// for a few syscalls at a time, never while a caller formats, so the wait is short unless a holder is stopped.
int lock_fd(int fd, int operation, std::uint64_t deadline, const char* name) {
    for (;;) {
        if (::flock(fd, operation | LOCK_NB) == 0) return 0;
        const int err = errno;
        if (err == EINTR) continue;
        if (err != EWOULDBLOCK) return fail(err, "segment '%s': flock failed: %s", name, std::strerror(err));
        if (now_ns() >= deadline) {
            return fail(ETIMEDOUT, "segment '%s' stayed locked by another process (stopped while creating or "
                                   "resetting it?)", name);
        }
        sleep_briefly();
    }
}

// Whether `path` still names the object open as `fd` (it may have been unlinked, or reset and re-created).
// lstat, not open: no descriptor needed (so no EMFILE to mistake for "changed"), and a symbolic link put at the
// name is never the object.
bool names_object(const char* path, int fd) {
    struct stat ours{}, theirs{};
    return ::fstat(fd, &ours) == 0 && ::lstat(path, &theirs) == 0 && ours.st_dev == theirs.st_dev &&
           ours.st_ino == theirs.st_ino;
}

int open_failure(int err, const char* name, const char* path) {
    if (err == ENOENT) {
        return fail(ENOENT, "no segment '%s' (%s): not created yet, or unlinked", name, path);
    }
    if (err == EACCES) {
        return fail(EACCES, "segment '%s': permission denied on %s (another user's segment?)", name, path);
    }
    if (err == ELOOP) {
        return fail(EACCES, "segment '%s': %s is a symbolic link: refused (segments are never followed)", name,
                    path);
    }
    return fail(err, "segment '%s': open(%s) failed: %s", name, path, std::strerror(err));
}

// The checks attach() and create() share, on a header of a `size`-byte object: magic, version, checksum, sizes.
int validate_header(const ShmHeader& header, std::size_t size, const char* name) {
    if (header.magic != kShmMagic) {
        return fail(EPROTO, "segment '%s' is not a ChronoFabric segment (bad magic 0x%016llx)", name,
                    static_cast<unsigned long long>(header.magic));
    }
    if (header.layout_version != ShmSegment::kLayoutVersion) {
        return fail(EPROTO, "segment '%s' has layout version %u, this library speaks %u (created by pid %u)", name,
                    header.layout_version, ShmSegment::kLayoutVersion, header.creator_pid);
    }
    if (header.checksum != header_checksum(header)) {
        return fail(EPROTO, "segment '%s' has a corrupt header (checksum mismatch)", name);
    }
    if (header.total_bytes != size || header.payload_offset != ShmSegment::kPayloadOffset ||
        header.payload_bytes != size - ShmSegment::kPayloadOffset) {
        return fail(EPROTO, "segment '%s' has a corrupt header (%llu bytes recorded, the object has %zu)", name,
                    static_cast<unsigned long long>(header.total_bytes), size);
    }
    return 0;
}

// Retires the old object (so holders still mapping it can tell) and removes its name. Under its LOCK_EX.
int reset_existing(const char* path, ShmHeader* header) {
    if (header != nullptr) header->state.store(static_cast<std::uint32_t>(ShmState::retired),
                                               std::memory_order_release);
    if (::unlink(path) != 0 && errno != ENOENT) {
        const int err = errno;
        return fail(err, "cannot unlink stale segment %s: %s", path, std::strerror(err));
    }
    return kWasReset;
}

// create() found the name taken: decide under the object's exclusive lock whether it is stale (reset it),
// in the middle of being created (retry), or in use (-EEXIST). `generation` gets the replacement's generation.
int resolve_existing(const char* path, const ShmSegmentConfig& config, std::uint32_t owner,
                     std::uint64_t deadline, std::uint64_t& generation) {
    const char* name = config.name;
    const int fd = ::open(path, O_RDWR | kOpenFlags);
    if (fd < 0) {
        const int err = errno;
        if (err == ENOENT) return kRetry;
        if (config.if_exists == ShmIfExists::replace) return reset_existing(path, nullptr);
        return open_failure(err, name, path);
    }
    FdGuard fd_guard(fd);   // closing drops the lock
    // Another owner's or a wider mode's file is never reset, nor used: only an operator's replace removes it.
    if (const int status = check_object(fd, owner, config.mode, name, path); status < 0) {
        if (config.if_exists == ShmIfExists::replace) return reset_existing(path, nullptr);
        return status;
    }
    if (const int status = lock_fd(fd, LOCK_EX, deadline, name); status < 0) return status;
    // Waiting for the lock, we may have waited for someone who reset or unlinked it.
    if (!names_object(path, fd)) return kRetry;
    struct stat st{};
    if (::fstat(fd, &st) != 0) {
        const int err = errno;
        return fail(err, "segment '%s': fstat failed: %s", name, std::strerror(err));
    }
    const auto size = static_cast<std::size_t>(st.st_size);
    generation = 1;
    if (size == 0) {
        // Its creator is between shm_open and ftruncate (it takes the lock right after shm_open, so we may hold
        // the lock before it does), or died there: give it until the deadline.
        if (now_ns() < deadline) {
            ::close(fd_guard.release());
            sleep_briefly();
            return kWaited;
        }
        return reset_existing(path, nullptr);
    }
    if (size < ShmSegment::kPayloadOffset) {
        if (config.if_exists == ShmIfExists::replace) return reset_existing(path, nullptr);
        return fail(EPROTO, "segment '%s' is %zu bytes, too small for a segment header: not a ChronoFabric "
                            "segment (remove %s, or create with ShmIfExists::replace)", name, size, path);
    }
    void* base = ::mmap(nullptr, ShmSegment::kPayloadOffset, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) {
        const int err = errno;
        return fail(err, "segment '%s': mmap of its header failed: %s", name, std::strerror(err));
    }
    MapGuard map_guard(base, ShmSegment::kPayloadOffset);
    auto* header = static_cast<ShmHeader*>(base);
    // acquire: pairs with the creator's release store, so a formatted header is read whole.
    const auto state = static_cast<ShmState>(header->state.load(std::memory_order_acquire));
    if (state == ShmState::unformatted && header->magic == 0) {
        // Sized but no header, and we hold the lock its creator holds until the header is written: it died.
        return reset_existing(path, nullptr);
    }
    if (const int status = validate_header(*header, size, name); status < 0) {
        if (config.if_exists == ShmIfExists::replace) return reset_existing(path, nullptr);
        return status;
    }
    generation = header->generation + 1;
    if (config.if_exists == ShmIfExists::replace) return reset_existing(path, header);
    // A retired object still named: its retirer died between marking and unlinking. Stale like any other.
    if (state != ShmState::retired) {
        if (process_liveness(header->creator_pid, header->creator_start_time) == Liveness::alive) {
            return fail(EEXIST, "segment '%s' is in use by pid %u (its creator)", name, header->creator_pid);
        }
        std::uint32_t pid = 0;
        const ProcessTable& table = ProcessTable::at(static_cast<char*>(base) + ShmSegment::kProcessTableOffset);
        if (table.any_alive(pid)) {
            return fail(EEXIST, "segment '%s' is in use by pid %u (registered in its process table)", name, pid);
        }
    }
    return reset_existing(path, header);
}

}  // namespace

ShmSegment::ShmSegment(ShmSegment&& other) noexcept { *this = std::move(other); }

ShmSegment& ShmSegment::operator=(ShmSegment&& other) noexcept {
    if (this != &other) {
        detach();
        header_ = std::exchange(other.header_, nullptr);
        mapped_bytes_ = std::exchange(other.mapped_bytes_, 0);
        payload_bytes_ = std::exchange(other.payload_bytes_, 0);
        layout_id_ = std::exchange(other.layout_id_, 0);
        generation_ = std::exchange(other.generation_, 0);
        creator_pid_ = std::exchange(other.creator_pid_, 0);
        fd_ = std::exchange(other.fd_, -1);
        creator_ = std::exchange(other.creator_, false);
        reset_ = std::exchange(other.reset_, false);
        locked_ = std::exchange(other.locked_, false);
        placement_ = std::exchange(other.placement_, -ENOENT);
        node_ = std::exchange(other.node_, -1);
        std::memcpy(name_, other.name_, sizeof name_);
        std::memcpy(path_, other.path_, sizeof path_);
        other.name_[0] = '\0';
        other.path_[0] = '\0';
    }
    return *this;
}

int ShmSegment::check_name(const char* name) noexcept {
    if (name == nullptr || name[0] == '\0') return fail(EINVAL, "segment name is empty");
    std::size_t length = 0;
    for (const char* c = name; *c != '\0'; ++c, ++length) {
        if (length >= kMaxNameLength) {
            return fail(EINVAL, "segment name is longer than %zu characters", kMaxNameLength);
        }
        const bool allowed = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
                             *c == '.' || *c == '_' || *c == '-';
        if (!allowed) {
            return fail(EINVAL, "segment name has '%c' (0x%02x) at %zu: only A-Z a-z 0-9 . _ - are allowed",
                        (*c >= 0x20 && *c < 0x7f) ? *c : '?', static_cast<unsigned>(static_cast<unsigned char>(*c)),
                        length);
        }
    }
    return 0;
}

void ShmSegment::adopt(int fd, ShmHeader* header, std::size_t mapped_bytes, const char* name, const char* path,
                       bool creator, bool reset, bool locked) noexcept {
    header_ = header;
    mapped_bytes_ = mapped_bytes;
    payload_bytes_ = mapped_bytes - kPayloadOffset;
    layout_id_ = header->layout_id;
    generation_ = header->generation;
    creator_pid_ = header->creator_pid;
    fd_ = fd;
    creator_ = creator;
    reset_ = reset;
    locked_ = locked;
    std::snprintf(name_, sizeof name_, "%s", name);
    std::snprintf(path_, sizeof path_, "%s", path);
}

int ShmSegment::create(const ShmSegmentConfig& config, ShmSegment& out) noexcept {
    out.detach();
    if (const int status = check_name(config.name); status < 0) return status;
    const char* name = config.name;
    if (config.payload_bytes == 0) return fail(EINVAL, "segment '%s': payload size is zero", name);
    if (config.payload_bytes > kMaxPayloadBytes) {
        return fail(EINVAL, "segment '%s': payload of %zu bytes exceeds the limit of %zu", name,
                    config.payload_bytes, kMaxPayloadBytes);
    }
    if ((config.mode & ~0777u) != 0 || (config.mode & 0600u) != 0600u) {
        return fail(EINVAL, "segment '%s': mode 0%o must be permission bits that include 0600", name, config.mode);
    }
    const std::uint32_t owner = resolve_owner(config.owner_uid);
    if (owner != static_cast<std::uint32_t>(::geteuid())) {
        return fail(EINVAL, "segment '%s': only its owner (uid %u) creates it; this process is uid %u: attach "
                            "instead", name, owner, static_cast<unsigned>(::geteuid()));
    }
    const int node = config.numa_node == kShmCreatorNode ? platform::current_numa_node() : config.numa_node;
    if (node < 0 || node >= platform::numa_node_count()) {
        return fail(EINVAL, "segment '%s': NUMA node %d does not exist (this machine has %d)", name,
                    config.numa_node, platform::numa_node_count());
    }
    ProcessIdentity self;
    if (const int status = self_identity(self); status < 0) return status;
    int directory = -1;
    if (const int status = check_owner_directory(owner, config.mode, true, name, &directory); status < 0) {
        return status;
    }
    FdGuard directory_guard(directory);   // closing drops its lock
    char path[kPathBytes];
    object_path(owner, name, path);
    const std::uint64_t deadline = deadline_after(config.wait_timeout);
    // Creators of this owner's segments take turns, from the first look at the name until the header is written:
    // of several racing to reset a stale segment, exactly one resets and creates it, and the others find it
    // live. (The segment's own lock still orders attachers and unlink() against its creator.)
    if (const int status = lock_fd(directory, LOCK_EX, deadline, name); status < 0) return status;
    const std::size_t total = kPayloadOffset + round_up(config.payload_bytes, kPayloadAlignment);

    std::uint64_t generation = 1;
    bool reset = false;
    int fd = -1;
    for (int changes = 0;;) {
        if (changes >= kMaxRounds) {
            return fail(EBUSY, "segment '%s': the name kept changing under us (other processes re-creating it)",
                        name);
        }
        fd = ::open(path, O_RDWR | O_CREAT | O_EXCL | kOpenFlags, static_cast<mode_t>(config.mode));
        if (fd >= 0) {
            // The lock tells inspectors the header is being written (they wait for it, see resolve_existing).
            if (const int status = lock_fd(fd, LOCK_EX, deadline, name); status < 0) {
                ::close(fd);
                return status;
            }
            // An inspector that gave up waiting for us may have reset the name before we got the lock.
            if (names_object(path, fd)) break;
            ::close(fd);
            ++changes;
            continue;
        }
        const int err = errno;
        if (err != EEXIST) return open_failure(err, name, path);
        if (config.if_exists == ShmIfExists::fail) {
            return fail(EEXIST, "segment '%s' already exists (%s)", name, path);
        }
        const int resolution = resolve_existing(path, config, owner, deadline, generation);
        if (resolution < 0) return resolution;
        if (resolution == kWasReset) reset = true;
        if (resolution != kWaited) ++changes;
    }

    // Ours, locked, empty, and nobody can have read anything from it: on any failure below, remove it again.
    FdGuard fd_guard(fd);
    struct Unlinker {
        const char* path;
        bool armed = true;
        ~Unlinker() {
            if (armed) ::unlink(path);
        }
    } unlinker{path};
    if (::fchmod(fd, static_cast<mode_t>(config.mode)) != 0) {   // open applied the umask
        const int err = errno;
        return fail(err, "segment '%s': fchmod 0%o failed: %s", name, config.mode, std::strerror(err));
    }
    if (::ftruncate(fd, static_cast<off_t>(total)) != 0) {
        const int err = errno;
        return fail(err, "segment '%s': cannot size it to %zu bytes: %s", name, total, std::strerror(err));
    }
    void* base = ::mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) {
        const int err = errno;
        return fail(err, "segment '%s': mmap of %zu bytes failed: %s", name, total, std::strerror(err));
    }
    struct Unmapper {
        void* base;
        std::size_t bytes;
        bool armed = true;
        ~Unmapper() {
            if (armed) ::munmap(base, bytes);
        }
    } unmapper{base, total};
    // Placed before any page exists: tmpfs allocates the file's pages by the policy mbind leaves on it, so they
    // are born on the node (nothing to move), for every process that maps the file later.
    int placement = platform::bind_region_to_node(base, total, node);
    if (placement != 0) platform::clear_last_error();   // reported by numa_placement(), not an error
    // Reserve the pages now: tmpfs would otherwise allocate on first touch, and a full /dev/shm would be a
    // SIGBUS in the hot path instead of an error here. Then map them all (MAP_POPULATE did this before placement
    // existed; the madvise needs Linux 5.14, older kernels fault them in here by a write of the zero they hold).
    if (const int err = ::posix_fallocate(fd, 0, static_cast<off_t>(total)); err != 0 && err != EOPNOTSUPP) {
        return fail(err, "segment '%s': cannot reserve %zu bytes in /dev/shm: %s", name, total, std::strerror(err));
    }
    if (::madvise(base, total, kMadvisePopulateWrite) != 0) {
        for (std::size_t offset = 0; offset < total; offset += kPageBytes) {
            static_cast<volatile char*>(base)[offset] = 0;
        }
    }
    const bool locked = config.lock_memory && ::mlock(base, total) == 0;

    auto* header = static_cast<ShmHeader*>(base);
    header->magic = kShmMagic;
    header->layout_version = kLayoutVersion;
    header->creator_pid = self.pid;
    header->creator_start_time = self.start_time;
    header->layout_id = config.layout_id;
    header->total_bytes = total;
    header->payload_offset = kPayloadOffset;
    header->payload_bytes = total - kPayloadOffset;
    header->generation = generation;
    header->checksum = header_checksum(*header);
    ProcessTable::format_at(static_cast<char*>(base) + kProcessTableOffset);
    // release: pairs with the acquire loads in attach() and resolve_existing(): the header and the empty
    // process table are visible to whoever sees `formatting`.
    header->state.store(static_cast<std::uint32_t>(ShmState::formatting), std::memory_order_release);
    ::flock(fd, LOCK_UN);

    unlinker.armed = false;
    unmapper.armed = false;
    out.adopt(fd_guard.release(), header, total, name, path, true, reset, locked);
    out.placement_ = placement;
    out.node_ = node;
    return 0;
}

int ShmSegment::attach(const char* name, std::uint64_t expected_layout_id, ShmSegment& out, Duration timeout,
                       std::uint32_t mode, std::uint32_t owner_uid) noexcept {
    out.detach();
    if (const int status = check_name(name); status < 0) return status;
    if ((mode & ~0777u) != 0 || (mode & 0600u) != 0600u) {
        return fail(EINVAL, "segment '%s': mode 0%o must be permission bits that include 0600", name, mode);
    }
    const std::uint32_t owner = resolve_owner(owner_uid);
    if (const int status = check_owner_directory(owner, mode, false, name); status < 0) return status;
    char path[kPathBytes];
    object_path(owner, name, path);
    const std::uint64_t deadline = deadline_after(timeout);

    for (int changes = 0;;) {
        if (changes >= kMaxRounds) {
            return fail(EBUSY, "segment '%s': the name kept changing under us (other processes re-creating it)",
                        name);
        }
        const int fd = ::open(path, O_RDWR | kOpenFlags);
        if (fd < 0) return open_failure(errno, name, path);
        FdGuard fd_guard(fd);
        if (const int status = check_object(fd, owner, mode, name, path); status < 0) return status;
        // Shared: excludes a creator writing the header and a resetter, not other attachers.
        if (const int status = lock_fd(fd, LOCK_SH, deadline, name); status < 0) return status;
        struct stat st{};
        if (::fstat(fd, &st) != 0) {
            const int err = errno;
            return fail(err, "segment '%s': fstat failed: %s", name, std::strerror(err));
        }
        const auto size = static_cast<std::size_t>(st.st_size);
        if (size == 0) {
            // Created but not sized yet (its creator is between two syscalls), or abandoned right there.
            if (now_ns() >= deadline) {
                return fail(ETIMEDOUT, "segment '%s' was not sized within %lld ms: its creator is stuck or died "
                                       "while creating it", name, millis(timeout));
            }
            ::close(fd_guard.release());
            sleep_briefly();
            continue;
        }
        if (size < kPayloadOffset) {
            return fail(EPROTO, "segment '%s' is %zu bytes, too small for a segment header", name, size);
        }
        // Validate through the header pages alone before mapping (and populating) the whole object.
        void* head = ::mmap(nullptr, kPayloadOffset, PROT_READ, MAP_SHARED, fd, 0);
        if (head == MAP_FAILED) {
            const int err = errno;
            return fail(err, "segment '%s': mmap of its header failed: %s", name, std::strerror(err));
        }
        MapGuard head_guard(head, kPayloadOffset);
        const auto* header = static_cast<const ShmHeader*>(head);
        // acquire: pairs with create()'s release store of `formatting`: the header fields are complete.
        const auto state = static_cast<ShmState>(header->state.load(std::memory_order_acquire));
        if (state == ShmState::unformatted && header->magic == 0) {
            // Sized, yet no header although we hold the lock its creator keeps until the header is written.
            return fail(ESTALE, "segment '%s' was never formatted: its creator died while creating it (the next "
                                "create() resets it)", name);
        }
        if (const int status = validate_header(*header, size, name); status < 0) return status;
        if (header->layout_id != expected_layout_id) {
            return fail(EPROTO, "segment '%s': layout id differs (0x%016llx, expected 0x%016llx): created by a "
                                "peer with another configuration or library version", name,
                        static_cast<unsigned long long>(header->layout_id),
                        static_cast<unsigned long long>(expected_layout_id));
        }
        if (state != ShmState::formatting && state != ShmState::ready && state != ShmState::retired) {
            return fail(EPROTO, "segment '%s' has a corrupt header (state %u)", name,
                        static_cast<unsigned>(state));
        }
        ::flock(fd, LOCK_UN);

        void* base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
        if (base == MAP_FAILED) {
            const int err = errno;
            return fail(err, "segment '%s': mmap of %zu bytes failed: %s", name, size, std::strerror(err));
        }
        MapGuard map_guard(base, size);
        auto* mapped = static_cast<ShmHeader*>(base);
        const std::uint32_t creator = mapped->creator_pid;
        const std::uint64_t creator_start = mapped->creator_start_time;

        // Wait for the creator to finish formatting the payload. acquire: pairs with mark_ready()'s release.
        ShmState now_state;
        while ((now_state = static_cast<ShmState>(mapped->state.load(std::memory_order_acquire))) ==
               ShmState::formatting) {
            if (process_liveness(creator, creator_start) != Liveness::alive) {
                return fail(ESTALE, "segment '%s' is stale: its creator pid %u died before making it ready (the "
                                    "next create() resets it)", name, creator);
            }
            if (now_ns() >= deadline) {
                return fail(ETIMEDOUT, "segment '%s' not ready after %lld ms: its creator pid %u is still "
                                       "formatting it", name, millis(timeout), creator);
            }
            sleep_briefly();
        }
        if (now_state == ShmState::retired) {
            // Reset or unlinked since we opened it: the name may already lead to its successor.
            if (!names_object(path, fd)) {
                ++changes;
                continue;
            }
            return fail(ESTALE, "segment '%s' is retired (its owner died while resetting it; the next create() "
                                "resets it)", name);
        }
        if (now_state != ShmState::ready) {
            return fail(EPROTO, "segment '%s' has a corrupt header (state %u)", name,
                        static_cast<unsigned>(now_state));
        }
        std::uint32_t user_pid = 0;
        if (process_liveness(creator, creator_start) != Liveness::alive &&
            !ProcessTable::at(static_cast<char*>(base) + kProcessTableOffset).any_alive(user_pid)) {
            return fail(ESTALE, "segment '%s' is stale: its creator pid %u and every registered process have "
                                "exited (the next create() resets it)", name, creator);
        }
        const bool locked = ::mlock(base, size) == 0;
        map_guard.release();
        out.adopt(fd_guard.release(), mapped, size, name, path, false, false, locked);
        return 0;
    }
}

int ShmSegment::mark_ready() noexcept {
    if (header_ == nullptr) return fail(EINVAL, "mark_ready: segment is not attached");
    if (!creator_) return fail(EPERM, "segment '%s': only its creator marks it ready", name_);
    std::uint32_t expected = static_cast<std::uint32_t>(ShmState::formatting);
    // release: everything the creator formatted in the payload happens before an attacher's acquire of `ready`.
    if (!header_->state.compare_exchange_strong(expected, static_cast<std::uint32_t>(ShmState::ready),
                                                std::memory_order_release, std::memory_order_relaxed)) {
        if (expected == static_cast<std::uint32_t>(ShmState::ready)) return 0;
        return fail(ESTALE, "segment '%s' was retired before it was ready", name_);
    }
    return 0;
}

void ShmSegment::detach() noexcept {
    if (header_ != nullptr) ::munmap(header_, mapped_bytes_);   // also ends the mlock
    if (fd_ >= 0) ::close(fd_);
    header_ = nullptr;
    mapped_bytes_ = 0;
    payload_bytes_ = 0;
    layout_id_ = 0;
    generation_ = 0;
    creator_pid_ = 0;
    fd_ = -1;
    creator_ = false;
    reset_ = false;
    locked_ = false;
    placement_ = -ENOENT;
    node_ = -1;
    name_[0] = '\0';
    path_[0] = '\0';
}

int ShmSegment::unlink() noexcept {
    if (header_ == nullptr) return fail(EINVAL, "unlink: segment is not attached");
    const char* path = path_;
    // The same lock create() takes to reset: unlinking never races a reset of this name. Our descriptor's lock
    // is dropped by the explicit unlock below (the descriptor stays open).
    if (const int status = lock_fd(fd_, LOCK_EX, deadline_after(kShmDefaultWaitTimeout), name_); status < 0) {
        return status;
    }
    if (!names_object(path, fd_)) {
        ::flock(fd_, LOCK_UN);
        return fail(ESTALE, "segment '%s': the name no longer refers to this segment (unlinked, or reset by "
                            "another process)", name_);
    }
    // release: a holder that sees `retired` also sees whatever we wrote before unlinking.
    header_->state.store(static_cast<std::uint32_t>(ShmState::retired), std::memory_order_release);
    int status = 0;
    if (::unlink(path) != 0) {
        const int err = errno;
        status = fail(err, "segment '%s': unlink of %s failed: %s", name_, path, std::strerror(err));
    }
    ::flock(fd_, LOCK_UN);
    return status;
}

int ShmSegment::remove(const char* name) noexcept {
    if (const int status = check_name(name); status < 0) return status;
    char path[kPathBytes];
    object_path(resolve_owner(kShmOwnerSelf), name, path);
    if (::unlink(path) != 0) {
        const int err = errno;
        if (err == ENOENT) return fail(ENOENT, "no segment '%s' (%s)", name, path);
        return fail(err, "segment '%s': unlink of %s failed: %s", name, path, std::strerror(err));
    }
    return 0;
}

int ShmSegment::path_of(const char* name, std::uint32_t owner_uid, char* out, std::size_t out_bytes) noexcept {
    if (const int status = check_name(name); status < 0) return status;
    if (out == nullptr || out_bytes < kMaxPathLength + 1) return fail(EINVAL, "path_of: the buffer is too small");
    char path[kPathBytes];
    object_path(resolve_owner(owner_uid), name, path);
    std::snprintf(out, out_bytes, "%s", path);
    return 0;
}

void* ShmSegment::payload() const noexcept {
    return header_ == nullptr ? nullptr : reinterpret_cast<char*>(header_) + kPayloadOffset;
}

ProcessTable& ShmSegment::processes() const noexcept {
    return ProcessTable::at(reinterpret_cast<char*>(header_) + kProcessTableOffset);
}

ShmState ShmSegment::state() const noexcept {
    if (header_ == nullptr) return ShmState::unformatted;
    return static_cast<ShmState>(header_->state.load(std::memory_order_acquire));
}

}  // namespace cf
