// The UDP socket options the drivers use for GSO and GRO, for C libraries whose headers predate them (the
// values are the kernel's ABI: include/uapi/linux/udp.h).
#pragma once

#include <netinet/in.h>
#include <netinet/udp.h>

#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif
