/**
 * @file chronofabric.h
 * The ChronoFabric C API, one header per object under chronofabric/; this one includes them all. The conventions
 * every function follows (status and count returns, error messages, NULL handling) are in chronofabric/status.h.
 */
#ifndef CHRONOFABRIC_H
#define CHRONOFABRIC_H

#include "chronofabric/status.h"
#include "chronofabric/version.h"
#include "chronofabric/log.h"
#include "chronofabric/engine.h"
#include "chronofabric/clock.h"
#include "chronofabric/pool.h"
#include "chronofabric/topic.h"
#include "chronofabric/publisher.h"
#include "chronofabric/subscriber.h"
#include "chronofabric/compute.h"
#include "chronofabric/morton.h"
#include "chronofabric/checksum.h"
#include "chronofabric/bridge.h"
#include "chronofabric/quic.h"

#endif /* CHRONOFABRIC_H */
