// What the C API's opaque handles are on the inside. Internal to the library.
#pragma once

#include <memory>

#include "chronofabric/chronofabric.h"
#include "engine/bus/publisher.hpp"
#include "engine/bus/subscriber.hpp"
#include "engine/runtime/engine.hpp"

namespace cf::capi {

// HLC stamps across the API, every field both ways.
inline cf_hlc_t to_c_stamp(const HlcStamp& stamp) noexcept { return cf_hlc_t{stamp.word, stamp.node, stamp.lane}; }
inline HlcStamp from_c_stamp(const cf_hlc_t& stamp) noexcept { return HlcStamp{stamp.word, stamp.node, stamp.lane}; }

}  // namespace cf::capi

struct cf_engine {
    std::unique_ptr<cf::Engine> engine;
};

// A cf_topic_t* is the engine's EngineTopic itself: every handle to one topic is the same pointer.
inline cf::EngineTopic* to_engine_topic(cf_topic_t* topic) noexcept { return reinterpret_cast<cf::EngineTopic*>(topic); }
inline cf_topic_t* to_handle(cf::EngineTopic* topic) noexcept { return reinterpret_cast<cf_topic_t*>(topic); }

struct cf_publisher {
    cf::EngineTopic* topic = nullptr;
    cf::bus::Publisher publisher;
};

struct cf_subscriber {
    cf::EngineTopic* topic = nullptr;
    cf::bus::Subscriber subscriber;
    cf::bus::Message batch[cf::bus::kMaxPollBatch];
};
