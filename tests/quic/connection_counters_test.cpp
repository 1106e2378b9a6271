// What the C API's connection statistics read from a Connection: the congestion controller chosen per connection
// (ConnectionConfig::congestion) and the count of lost packets whose frames were sent again.
#include <doctest/doctest.h>

#include <cstring>

#include "tests/quic/connection_pair.hpp"

using namespace cf::quic;
using cf::quic::test::Pair;

TEST_CASE("connection: the congestion controller is the one its ConnectionConfig names") {
    Pair pair;
    pair.server_config.congestion = CongestionAlgorithm::new_reno;
    pair.run();
    REQUIRE(pair.server != nullptr);
    CHECK(pair.server->recovery().congestion().algorithm() == CongestionAlgorithm::new_reno);
    CHECK(pair.client->recovery().congestion().algorithm() == CongestionAlgorithm::cubic);   // the default
    CHECK(pair.server->handshake_confirmed());
}

TEST_CASE("connection: without loss nothing is retransmitted; with loss, lost packets with frames are, and no more") {
    for (const int loss : {0, 20}) {
        Pair pair;
        pair.random.seed(11);
        pair.drop_percent = loss;
        pair.run(2000);
        REQUIRE(pair.server != nullptr);
        REQUIRE(pair.client->handshake_confirmed());
        // 200 messages of 1000 bytes to the server, read as they come.
        const std::int64_t id = pair.client->streams().open_stream(StreamDirection::bidirectional);
        REQUIRE(id >= 0);
        const auto stream = static_cast<StreamId>(id);
        std::uint8_t message[1000];
        int sent = 0, received = 0;
        for (int step = 0; step < 20000 && received < 200; ++step) {
            while (sent < 200) {
                std::memset(message, sent, sizeof message);
                if (pair.client->streams().send_message(stream, message, sizeof message) != 0) break;
                ++sent;
            }
            pair.step();
            const std::uint8_t* data = nullptr;
            std::size_t length = 0;
            while (pair.server->streams().next_message(stream, data, length) == 1) {
                CHECK(length == sizeof message);
                CHECK(data[0] == static_cast<std::uint8_t>(received));
                REQUIRE(pair.server->streams().release_message(stream) == 0);
                ++received;
            }
        }
        INFO("loss ", loss, "%: lost ", pair.client->recovery().stats().packets_lost, ", retransmitted ",
             pair.client->packets_retransmitted());
        CHECK(received == 200);
        if (loss == 0) {
            CHECK(pair.client->recovery().stats().packets_lost == 0);
            CHECK(pair.client->packets_retransmitted() == 0);
        } else {
            CHECK(pair.client->packets_retransmitted() > 0);
            CHECK(pair.client->packets_retransmitted() <= pair.client->recovery().stats().packets_lost);
            CHECK(pair.server->packets_retransmitted() <= pair.server->recovery().stats().packets_lost);
        }
    }
}
