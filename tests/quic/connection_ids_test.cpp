// Connection IDs and stateless reset (RFC 9000 sections 5.1, 10.3, 19.15, 19.16): the two ID sets rule by rule with
// their error codes, the token key against an independent HMAC, and two connections in memory that issue, retire,
// switch and keep delivering, break the rules on purpose (each code end to end), and detect a stateless reset.
#include <doctest/doctest.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <vector>

#include "engine/quic/connection.hpp"
#include "engine/quic/local_connection_ids.hpp"
#include "engine/quic/peer_connection_ids.hpp"
#include "engine/quic/stateless_reset.hpp"
#include "tests/quic/connection_pair.hpp"

using namespace cf::quic;
using cf::quic::test::cid;
using cf::quic::test::Pair;

namespace {

StatelessResetToken token_of(std::uint8_t seed) {
    StatelessResetToken token;
    for (std::size_t i = 0; i < token.bytes.size(); ++i) token.bytes[i] = static_cast<std::uint8_t>(seed + 3 * i);
    return token;
}

NewConnectionIdFrame new_id(std::uint64_t sequence, std::uint64_t retire_prior_to, std::uint8_t cid_seed,
                            std::uint8_t token_seed) {
    NewConnectionIdFrame frame;
    frame.sequence_number = sequence;
    frame.retire_prior_to = retire_prior_to;
    const ConnectionId id = cid(cid_seed);
    frame.connection_id_length = static_cast<std::uint8_t>(id.size());
    std::memcpy(frame.connection_id.data(), id.data(), id.size());
    frame.stateless_reset_token = token_of(token_seed).bytes;
    return frame;
}

// A set holding the peer's handshake ID (sequence 0, cid(0x50), token 0x90) with our limit of 4.
PeerConnectionIds peer_set(bool with_token = true) {
    PeerConnectionIds ids;
    const StatelessResetToken token = token_of(0x90);
    ids.reset(cid(0x50), with_token ? &token : nullptr, 4);
    return ids;
}

TransportError offer(PeerConnectionIds& ids, const NewConnectionIdFrame& frame, bool* stored_out = nullptr) {
    bool stored = false;
    const TransportError error = ids.on_new_connection_id(frame, stored);
    if (stored_out != nullptr) *stored_out = stored;
    return error;
}

std::vector<std::uint64_t> retirements(PeerConnectionIds& ids) {
    std::vector<std::uint64_t> out;
    RetireConnectionIdFrame frame;
    while (ids.next_frame(frame)) out.push_back(frame.sequence_number);
    return out;
}

}  // namespace

// ---- ours ----

TEST_CASE("local connection IDs: sequence 0 from the handshake, then issued in order up to the capacity") {
    LocalConnectionIds ids;
    ids.reset(cid(0x10), token_of(1));
    CHECK(ids.active() == 1);
    CHECK(ids.next_sequence() == 1);
    CHECK_FALSE(ids.wants_to_send());   // sequence 0 is never sent in a frame
    CHECK(ids.find(cid(0x10).bytes()) == 0);
    for (std::uint64_t s = 1; s < LocalConnectionIds::kCapacity; ++s) {
        CHECK(ids.add(cid(static_cast<std::uint8_t>(0x10 + s)), token_of(static_cast<std::uint8_t>(s + 1))) == s);
    }
    CHECK(ids.add(cid(0x77), token_of(9)) == LocalConnectionIds::kNone);   // full
    CHECK(ids.active() == LocalConnectionIds::kCapacity);
    // Frames come out oldest first, with the ID and token, each once.
    NewConnectionIdFrame frame;
    for (std::uint64_t s = 1; s < LocalConnectionIds::kCapacity; ++s) {
        REQUIRE(ids.next_frame(frame));
        CHECK(frame.sequence_number == s);
        CHECK(frame.retire_prior_to == 0);
        CHECK(ConnectionId::from(frame.id()) == cid(static_cast<std::uint8_t>(0x10 + s)));
        CHECK(frame.stateless_reset_token == token_of(static_cast<std::uint8_t>(s + 1)).bytes);
    }
    CHECK_FALSE(ids.next_frame(frame));
    CHECK_FALSE(ids.wants_to_send());
    // A lost one goes again; one retired meanwhile does not.
    ids.on_lost(2);
    CHECK(ids.wants_to_send());
    REQUIRE(ids.next_frame(frame));
    CHECK(frame.sequence_number == 2);
    bool retired = false;
    CHECK(ids.retire(3, 0, retired) == TransportError::no_error);
    CHECK(retired);
    ids.on_lost(3);
    CHECK_FALSE(ids.wants_to_send());
    ids.on_lost(0);   // the handshake ID has no frame to resend
    CHECK_FALSE(ids.wants_to_send());
}

TEST_CASE("local connection IDs: RETIRE_CONNECTION_ID rules of section 19.16") {
    LocalConnectionIds ids;
    ids.reset(cid(0x10), token_of(1));
    REQUIRE(ids.add(cid(0x11), token_of(2)) == 1);
    REQUIRE(ids.add(cid(0x12), token_of(3)) == 2);
    bool retired = true;
    SUBCASE("a sequence number never issued: PROTOCOL_VIOLATION") {
        CHECK(ids.retire(3, 0, retired) == TransportError::protocol_violation);
        CHECK_FALSE(retired);
        CHECK(ids.retire(UINT64_MAX - 1, 0, retired) == TransportError::protocol_violation);
        CHECK(ids.active() == 3);
    }
    SUBCASE("the ID the packet itself was sent to: PROTOCOL_VIOLATION") {
        CHECK(ids.retire(1, 1, retired) == TransportError::protocol_violation);
        CHECK(ids.find(cid(0x11).bytes()) == 1);
    }
    SUBCASE("a valid one goes at once and stops routing; again is no error") {
        CHECK(ids.retire(0, 2, retired) == TransportError::no_error);
        CHECK(retired);
        CHECK_FALSE(ids.contains(cid(0x10).bytes()));
        CHECK(ids.active() == 2);
        CHECK(ids.retire(0, 2, retired) == TransportError::no_error);
        CHECK_FALSE(retired);
        // The freed slot takes the next sequence number, never a reused one.
        CHECK(ids.add(cid(0x13), token_of(4)) == 3);
    }
    SUBCASE("a packet to no ID of the set (a server's original DCID) may retire any issued one") {
        CHECK(ids.retire(2, LocalConnectionIds::kNone, retired) == TransportError::no_error);
        CHECK(retired);
    }
}

// ---- the peer's ----

TEST_CASE("peer connection IDs: NEW_CONNECTION_ID rules of section 19.15, each with its code") {
    PeerConnectionIds ids = peer_set();
    REQUIRE(offer(ids, new_id(1, 0, 0x51, 0x91)) == TransportError::no_error);
    SUBCASE("to an endpoint that sends to a zero-length ID: PROTOCOL_VIOLATION") {
        PeerConnectionIds empty;
        empty.reset(ConnectionId{}, nullptr, 4);
        CHECK(offer(empty, new_id(1, 0, 0x51, 0x91)) == TransportError::protocol_violation);
    }
    SUBCASE("retire_prior_to above the sequence number: FRAME_ENCODING_ERROR") {
        CHECK(offer(ids, new_id(2, 3, 0x52, 0x92)) == TransportError::frame_encoding_error);
    }
    SUBCASE("a sequence number again with another ID: PROTOCOL_VIOLATION") {
        CHECK(offer(ids, new_id(1, 0, 0x5f, 0x91)) == TransportError::protocol_violation);
    }
    SUBCASE("a sequence number again with another token: PROTOCOL_VIOLATION") {
        CHECK(offer(ids, new_id(1, 0, 0x51, 0x9f)) == TransportError::protocol_violation);
    }
    SUBCASE("an ID again under another sequence number: PROTOCOL_VIOLATION") {
        CHECK(offer(ids, new_id(2, 0, 0x51, 0x91)) == TransportError::protocol_violation);
        CHECK(offer(ids, new_id(2, 0, 0x50, 0x92)) == TransportError::protocol_violation);   // the handshake's
    }
    SUBCASE("sequence 0 in a frame contradicts the handshake ID: PROTOCOL_VIOLATION") {
        CHECK(offer(ids, new_id(0, 0, 0x58, 0x98)) == TransportError::protocol_violation);
    }
    SUBCASE("an exact repeat changes nothing") {
        CHECK(offer(ids, new_id(1, 0, 0x51, 0x91)) == TransportError::no_error);
        CHECK(ids.active() == 2);
        CHECK_FALSE(ids.wants_to_send());
    }
    SUBCASE("more active IDs than our limit: CONNECTION_ID_LIMIT_ERROR, unless retire_prior_to makes room") {
        REQUIRE(offer(ids, new_id(2, 0, 0x52, 0x92)) == TransportError::no_error);
        REQUIRE(offer(ids, new_id(3, 0, 0x53, 0x93)) == TransportError::no_error);
        CHECK(ids.active() == 4);
        CHECK(offer(ids, new_id(4, 0, 0x54, 0x94)) == TransportError::connection_id_limit_error);
        CHECK(offer(ids, new_id(4, 1, 0x54, 0x94)) == TransportError::no_error);
        CHECK(ids.active() == 4);
        CHECK(retirements(ids) == std::vector<std::uint64_t>{0});
    }
}

TEST_CASE("peer connection IDs: retire_prior_to retires the older ones and moves us off a retired one") {
    PeerConnectionIds ids = peer_set();
    REQUIRE(offer(ids, new_id(1, 0, 0x51, 0x91)) == TransportError::no_error);
    REQUIRE(offer(ids, new_id(2, 0, 0x52, 0x92)) == TransportError::no_error);
    CHECK(ids.current() == cid(0x50));
    REQUIRE(offer(ids, new_id(3, 2, 0x53, 0x93)) == TransportError::no_error);
    CHECK(ids.retire_prior_to() == 2);
    CHECK(ids.active() == 2);
    CHECK(ids.current() == cid(0x52));   // the lowest active
    CHECK(ids.current_sequence() == 2);
    CHECK(retirements(ids) == std::vector<std::uint64_t>{0, 1});
    CHECK_FALSE(ids.wants_to_send());
    // A lost RETIRE_CONNECTION_ID goes again; an acknowledged one frees its slot for good.
    ids.on_lost(1);
    CHECK(retirements(ids) == std::vector<std::uint64_t>{1});
    ids.on_acked(0);
    ids.on_acked(1);
    CHECK_FALSE(ids.wants_to_send());
    // A late frame below the retire_prior_to seen is retired on arrival, never used (section 5.1.2).
    REQUIRE(offer(ids, new_id(1, 0, 0x61, 0xa1)) == TransportError::no_error);
    CHECK(ids.active() == 2);
    CHECK(ids.current() == cid(0x52));
    CHECK(retirements(ids) == std::vector<std::uint64_t>{1});
    // A smaller retire_prior_to than before changes nothing.
    REQUIRE(offer(ids, new_id(4, 1, 0x54, 0x94)) == TransportError::no_error);
    CHECK(ids.retire_prior_to() == 2);
    CHECK(ids.active() == 3);
}

TEST_CASE("peer connection IDs: a frame is not stored while every slot waits on a retirement, and comes again") {
    static_assert(PeerConnectionIds::kSlots == 12 && PeerConnectionIds::kMaxLimit == 4);
    PeerConnectionIds ids = peer_set();
    // Groups of 4, each retiring the group before: 0..7 wait on their retirement, 8..11 active, every slot taken.
    for (std::uint64_t s = 1; s <= 11; ++s) {
        const std::uint64_t retire_prior_to = s / 4 * 4;
        REQUIRE(offer(ids, new_id(s, retire_prior_to, static_cast<std::uint8_t>(0x50 + s),
                                  static_cast<std::uint8_t>(0x90 + s))) == TransportError::no_error);
    }
    CHECK(retirements(ids).size() == 8);
    CHECK(ids.active() == 4);
    CHECK(ids.current_sequence() == 8);
    bool stored = true;
    CHECK(offer(ids, new_id(12, 9, 0x5c, 0x9c), &stored) == TransportError::no_error);
    CHECK_FALSE(stored);
    CHECK(ids.retire_prior_to() == 8);   // nothing changed
    CHECK(ids.active() == 4);
    CHECK(ids.current_sequence() == 8);
    ids.on_acked(0);
    CHECK(offer(ids, new_id(12, 9, 0x5c, 0x9c), &stored) == TransportError::no_error);
    CHECK(stored);
    CHECK(ids.retire_prior_to() == 9);
    CHECK(ids.current_sequence() == 9);
    CHECK(retirements(ids) == std::vector<std::uint64_t>{8});
}

TEST_CASE("peer connection IDs: switching to a fresh ID on demand retires the old one") {
    PeerConnectionIds ids = peer_set();
    CHECK(ids.switch_to_fresh() == -EAGAIN);   // none unused
    REQUIRE(offer(ids, new_id(2, 0, 0x52, 0x92)) == TransportError::no_error);
    REQUIRE(offer(ids, new_id(1, 0, 0x51, 0x91)) == TransportError::no_error);
    CHECK(ids.switch_to_fresh() == 0);
    CHECK(ids.current() == cid(0x51));   // the lowest unused
    CHECK(retirements(ids) == std::vector<std::uint64_t>{0});
    CHECK(ids.switch_to_fresh() == 0);
    CHECK(ids.current() == cid(0x52));
    CHECK(ids.switch_to_fresh() == -EAGAIN);
    CHECK(ids.current() == cid(0x52));
    CHECK(ids.active() == 1);
}

TEST_CASE("peer connection IDs: stateless reset tokens match exactly, only for IDs used and not retired") {
    PeerConnectionIds ids = peer_set();
    REQUIRE(offer(ids, new_id(1, 0, 0x51, 0x91)) == TransportError::no_error);
    REQUIRE(offer(ids, new_id(2, 0, 0x52, 0x92)) == TransportError::no_error);
    CHECK(ids.any_token());
    CHECK(ids.matches_reset_token(token_of(0x90).bytes.data()));   // the handshake ID's (transport parameter)
    CHECK_FALSE(ids.matches_reset_token(token_of(0x91).bytes.data()));   // never sent to (section 10.3.1)
    REQUIRE(ids.switch_to_fresh() == 0);
    CHECK(ids.matches_reset_token(token_of(0x91).bytes.data()));
    CHECK_FALSE(ids.matches_reset_token(token_of(0x90).bytes.data()));   // retired by the switch
    for (std::size_t byte = 0; byte < StatelessResetToken::kSize; ++byte) {
        for (int bit = 0; bit < 8; ++bit) {
            StatelessResetToken flipped = token_of(0x91);
            flipped.bytes[byte] ^= static_cast<std::uint8_t>(1 << bit);
            CHECK_FALSE(ids.matches_reset_token(flipped.bytes.data()));
        }
    }
    const StatelessResetToken zero{};
    CHECK_FALSE(ids.matches_reset_token(zero.bytes.data()));   // free slots hold zero tokens: never a match
    // Retired by retire_prior_to: its token no longer counts; the one we moved to does.
    REQUIRE(offer(ids, new_id(3, 2, 0x53, 0x93)) == TransportError::no_error);
    CHECK(ids.current() == cid(0x52));
    CHECK_FALSE(ids.matches_reset_token(token_of(0x91).bytes.data()));
    CHECK(ids.matches_reset_token(token_of(0x92).bytes.data()));
    // A client's handshake ID has no token (a client sends no stateless_reset_token parameter).
    PeerConnectionIds no_token = peer_set(false);
    CHECK_FALSE(no_token.any_token());
    CHECK_FALSE(no_token.matches_reset_token(zero.bytes.data()));
}

// ---- tokens ----

TEST_CASE("stateless reset key: the token is HMAC-SHA256(key, CID) cut to 16 bytes, the same after a restart") {
    StatelessResetKey::Key bytes;
    for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<std::uint8_t>(i);
    StatelessResetKey key;
    key.open(bytes);
    ConnectionId id;
    const std::uint8_t cid_bytes[] = {0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7};
    REQUIRE(id.assign(cid_bytes, sizeof cid_bytes));
    StatelessResetToken token;
    REQUIRE(key.token(id, token) == 0);
    // Python's hmac.new(bytes(range(32)), bytes(range(0xc0, 0xc8)), hashlib.sha256).hexdigest()[:32].
    const StatelessResetToken expected{{0x19, 0xe9, 0x2c, 0x3d, 0xca, 0x32, 0xb6, 0x35, 0xd9, 0x67, 0x2b, 0xc6, 0x3c,
                                        0xa7, 0xfa, 0x6e}};
    CHECK(token == expected);
    StatelessResetKey again;
    again.open(bytes);
    StatelessResetToken same;
    REQUIRE(again.token(id, same) == 0);
    CHECK(same == token);
    StatelessResetKey fresh;
    REQUIRE(fresh.open() == 0);
    StatelessResetToken other;
    REQUIRE(fresh.token(id, other) == 0);
    CHECK(other != token);
    REQUIRE(key.token(cid(0x11), other) == 0);
    CHECK(other != token);
}

// ---- two connections ----

namespace {

struct Established {
    StatelessResetKey key;
    Pair pair;
    Connection* client = nullptr;
    Connection* server = nullptr;

    explicit Established(bool keyed = false, ConnectionId server_cid = cid(0x20)) {
        if (keyed) {
            REQUIRE(key.open() == 0);
            pair.server_config.reset_key = &key;
        }
        pair.server_cid = server_cid;
        pair.run();
        REQUIRE(pair.server != nullptr);
        client = pair.client.get();
        server = pair.server.get();
        REQUIRE(client->handshake_confirmed());
        REQUIRE(server->handshake_confirmed());
        settle();
    }
    void settle(int steps = 30) {
        for (int i = 0; i < steps && !client->closed() && !server->closed(); ++i) pair.step();
    }
    // One message from the client echoed by the server, through whatever connection IDs are in use.
    bool echo(StreamId id, std::uint8_t tag) {
        std::uint8_t message[32];
        std::memset(message, tag, sizeof message);
        if (client->streams().send_message(id, message, sizeof message) != 0) return false;
        for (int step = 0; step < 200; ++step) {
            pair.step();
            StreamTable& table = server->streams();
            StreamId readable = 0;
            const std::uint8_t* data = nullptr;
            std::size_t length = 0;
            while (table.next_readable(readable)) {
                while (table.next_message(readable, data, length) == 1) {
                    if (table.send_message(readable, data, length) != 0) return false;
                    (void)table.release_message(readable);
                }
            }
            if (client->streams().next_message(id, data, length) == 1) {
                const bool same = length == sizeof message && std::memcmp(data, message, length) == 0;
                (void)client->streams().release_message(id);
                return same;
            }
        }
        return false;
    }
    // `frames` sent by `from` as they are; then steps until both ends closed (one on the rule, the other on its
    // CONNECTION_CLOSE).
    void inject(Connection& from, std::span<const std::uint8_t> frames) {
        REQUIRE(from.send_frame_bytes_for_testing(frames));
        for (int i = 0; i < 60 && !(client->closed() && server->closed()); ++i) pair.step();
    }
};

std::vector<std::uint8_t> encoded(const Frame& frame) {
    std::vector<std::uint8_t> bytes(Connection::kMaxTestFrameBytes);
    ByteWriter writer(bytes.data(), bytes.size());
    REQUIRE(encode_frame(writer, frame));
    bytes.resize(writer.size());
    return bytes;
}

const LocalConnectionIds::Entry* entry_for(const LocalConnectionIds& ids, const ConnectionId& id) {
    for (const auto& e : ids.entries()) {
        if (e.sequence != LocalConnectionIds::kNone && e.cid == id) return &e;
    }
    return nullptr;
}

}  // namespace

TEST_CASE("connection IDs: after the handshake each side holds four of the other's, with the server's token") {
    Established run(true);
    CHECK(run.client->local_cids().active() == 4);
    CHECK(run.server->local_cids().active() == 4);
    CHECK(run.client->peer_cids().active() == 4);
    CHECK(run.server->peer_cids().active() == 4);
    CHECK_FALSE(run.client->local_cids().wants_to_send());
    CHECK_FALSE(run.server->local_cids().wants_to_send());
    CHECK(run.client->unhandled_frames() == 0);
    CHECK(run.server->unhandled_frames() == 0);
    CHECK(run.client->peer_parameters().active_connection_id_limit == 4);
    // The server's stateless_reset_token parameter is its key's token for its handshake ID.
    StatelessResetToken expected;
    REQUIRE(run.key.token(cid(0x20), expected) == 0);
    REQUIRE(run.client->peer_parameters().stateless_reset_token.has_value());
    CHECK(*run.client->peer_parameters().stateless_reset_token == expected);
    // And every ID it issued carries its key's token.
    for (const auto& e : run.server->local_cids().entries()) {
        REQUIRE(run.key.token(e.cid, expected) == 0);
        CHECK(e.token == expected);
    }
    CHECK_FALSE(run.server->peer_parameters().stateless_reset_token.has_value());   // a client sends none
}

TEST_CASE("connection IDs: switching again and again, each side retires and replaces, streams keep delivering") {
    Established run;
    const std::int64_t opened = run.client->streams().open_stream(StreamDirection::bidirectional);
    REQUIRE(opened >= 0);
    const auto id = static_cast<StreamId>(opened);
    REQUIRE(run.echo(id, 0));
    for (int round = 1; round <= 12; ++round) {
        Connection& mover = round % 2 == 1 ? *run.client : *run.server;
        Connection& other = round % 2 == 1 ? *run.server : *run.client;
        const ConnectionId before = mover.peer_cid();
        const std::uint64_t next_before = other.local_cids().next_sequence();
        INFO("round ", round);
        REQUIRE(mover.switch_peer_cid() == 0);
        CHECK(mover.peer_cid() != before);
        REQUIRE(run.echo(id, static_cast<std::uint8_t>(round)));
        run.settle();
        // The other side forgot the retired ID (its packets no longer route) and issued a replacement.
        CHECK_FALSE(other.owns_cid(before.bytes()));
        CHECK(other.owns_cid(mover.peer_cid().bytes()));
        CHECK(other.local_cids().next_sequence() == next_before + 1);
        CHECK(other.local_cids().active() == 4);
        CHECK(mover.peer_cids().active() == 4);
        CHECK_FALSE(mover.peer_cids().wants_to_send());
    }
    CHECK_FALSE(run.client->closed());
    CHECK_FALSE(run.server->closed());
}

TEST_CASE("connection IDs: NEW_CONNECTION_ID and RETIRE_CONNECTION_ID survive 30% datagram loss") {
    for (int seed = 0; seed < 5; ++seed) {
        INFO("seed ", seed);
        Established run;
        run.pair.random.seed(static_cast<std::uint64_t>(seed));
        run.pair.drop_percent = 30;
        const std::int64_t opened = run.client->streams().open_stream(StreamDirection::bidirectional);
        REQUIRE(opened >= 0);
        for (int round = 0; round < 6; ++round) {
            REQUIRE(run.client->switch_peer_cid() == 0);
            REQUIRE(run.echo(static_cast<StreamId>(opened), static_cast<std::uint8_t>(round)));
            run.settle(200);
            REQUIRE(run.client->peer_cids().active() == 4);
        }
        run.pair.drop_percent = 0;
        run.settle(200);
        CHECK(run.server->local_cids().next_sequence() == 4 + 6);
        CHECK(run.server->local_cids().active() == 4);
        CHECK_FALSE(run.client->peer_cids().wants_to_send());
        CHECK_FALSE(run.server->local_cids().wants_to_send());
    }
}

TEST_CASE("connection IDs: each broken rule closes the connection with its code, seen at both ends") {
    Established run;
    Connection* breaker = nullptr;
    Connection* judge = nullptr;
    std::vector<std::uint8_t> frames;
    std::uint64_t code = 0;
    SUBCASE("RETIRE_CONNECTION_ID for a sequence number never issued: PROTOCOL_VIOLATION") {
        breaker = run.client;
        judge = run.server;
        frames = encoded(RetireConnectionIdFrame{run.server->local_cids().next_sequence()});
        code = 0x0a;
    }
    SUBCASE("RETIRE_CONNECTION_ID for the ID its own packet was sent to: PROTOCOL_VIOLATION") {
        breaker = run.client;
        judge = run.server;
        frames = encoded(RetireConnectionIdFrame{run.client->peer_cids().current_sequence()});
        code = 0x0a;
    }
    SUBCASE("NEW_CONNECTION_ID repeating a sequence number with another ID: PROTOCOL_VIOLATION") {
        breaker = run.server;
        judge = run.client;
        frames = encoded(new_id(1, 0, 0x77, 0x01));
        code = 0x0a;
    }
    SUBCASE("one NEW_CONNECTION_ID more than our active_connection_id_limit: CONNECTION_ID_LIMIT_ERROR") {
        breaker = run.server;
        judge = run.client;
        frames = encoded(new_id(run.server->local_cids().next_sequence(), 0, 0x77, 0x01));
        code = 0x09;
    }
    SUBCASE("retire_prior_to above the sequence number: FRAME_ENCODING_ERROR") {
        breaker = run.server;
        judge = run.client;
        frames = encoded(new_id(9, 0, 0x77, 0x01));
        frames[2] = 10;   // retire_prior_to's one-byte varint, after the type and sequence bytes
        code = 0x07;
    }
    run.inject(*breaker, frames);
    CHECK(judge->state() == ConnectionState::closing);
    CHECK(judge->error_code() == code);
    CHECK(breaker->closed_by_peer());
    CHECK(breaker->error_code() == code);
}

TEST_CASE("connection IDs: NEW_CONNECTION_ID to a client that sends to a zero-length ID: PROTOCOL_VIOLATION") {
    Established run(false, ConnectionId{});
    CHECK(run.client->peer_cid().empty());
    CHECK(run.server->local_cids().active() == 1);   // a zero-length ID: nothing to issue
    CHECK(run.client->peer_cids().active() == 1);
    CHECK(run.client->switch_peer_cid() == -EAGAIN);
    run.inject(*run.server, encoded(new_id(1, 0, 0x77, 0x01)));
    CHECK(run.client->error_code() == 0x0a);
    CHECK(run.server->closed_by_peer());
}

TEST_CASE("stateless reset: a datagram ending in the peer's token drains the connection; others are dropped") {
    Established run;
    Connection& client = *run.client;
    const LocalConnectionIds::Entry* held = entry_for(run.server->local_cids(), client.peer_cid());
    REQUIRE(held != nullptr);
    std::uint8_t unpredictable[kStatelessResetSizeCap];
    for (std::size_t i = 0; i < sizeof unpredictable; ++i) unpredictable[i] = static_cast<std::uint8_t>(37 * i + 5);
    std::uint8_t datagram[64];
    SUBCASE("a wrong token, or too short a datagram: dropped, the connection goes on") {
        StatelessResetToken wrong = held->token;
        wrong.bytes[15] ^= 1;
        REQUIRE(write_stateless_reset(datagram, sizeof datagram, 40, unpredictable, wrong) == 0);
        const std::uint64_t dropped = client.dropped_packets();
        client.receive_datagram(datagram, 40, run.pair.now);
        CHECK(client.dropped_packets() > dropped);
        CHECK_FALSE(client.closed());
        // 20 bytes ending in the right token: under the minimum size, not a reset.
        std::memcpy(datagram + 4, held->token.bytes.data(), 16);
        datagram[0] = 0x40;
        client.receive_datagram(datagram, 20, run.pair.now);
        CHECK_FALSE(client.closed());
        REQUIRE(run.echo(static_cast<StreamId>(client.streams().open_stream(StreamDirection::bidirectional)), 1));
    }
    SUBCASE("the right token: draining, silent, with the reason") {
        REQUIRE(write_stateless_reset(datagram, sizeof datagram, 40, unpredictable, held->token) == 0);
        client.receive_datagram(datagram, 40, run.pair.now);
        CHECK(client.state() == ConnectionState::draining);
        CHECK(client.reset_by_peer());
        CHECK(client.error_message().find("stateless reset") != std::string::npos);
        std::uint8_t out[Connection::kMaxDatagramBytes];
        client.send_ping();
        CHECK(client.write_datagram(out, sizeof out, run.pair.now + 1'000'000) == 0);
    }
    SUBCASE("through the Endpoint's path for unrouted datagrams: only the token of an ID the client sent to") {
        const LocalConnectionIds::Entry* unused = nullptr;
        for (const auto& e : run.server->local_cids().entries()) {
            if (e.sequence != LocalConnectionIds::kNone && !(e.cid == client.peer_cid())) unused = &e;
        }
        REQUIRE(unused != nullptr);
        REQUIRE(write_stateless_reset(datagram, sizeof datagram, 30, unpredictable, unused->token) == 0);
        CHECK_FALSE(client.receive_stateless_reset(datagram, 30));   // never sent to: not checked (section 10.3.1)
        REQUIRE(write_stateless_reset(datagram, sizeof datagram, 21, unpredictable, held->token) == 0);
        CHECK_FALSE(client.receive_stateless_reset(datagram, 20));
        REQUIRE(write_stateless_reset(datagram, sizeof datagram, 30, unpredictable, held->token) == 0);
        CHECK(client.receive_stateless_reset(datagram, 30));
        CHECK(client.reset_by_peer());
        CHECK_FALSE(client.receive_stateless_reset(datagram, 30));   // once
    }
    SUBCASE("a server is reset by its client's tokens too, once it sends to an ID from NEW_CONNECTION_ID") {
        // The client's handshake ID has no token; the server moves to one that has.
        REQUIRE(run.server->switch_peer_cid() == 0);
        const LocalConnectionIds::Entry* client_id = entry_for(client.local_cids(), run.server->peer_cid());
        REQUIRE(client_id != nullptr);
        CHECK(client_id->sequence != 0);
        REQUIRE(write_stateless_reset(datagram, sizeof datagram, 43, unpredictable, client_id->token) == 0);
        run.server->receive_datagram(datagram, 43, run.pair.now);
        CHECK(run.server->reset_by_peer());
    }
}
