#include "chronofabric/chronofabric.h"

extern "C" {

uint32_t cf_version(void) { return CF_VERSION_NUMBER; }

const char* cf_version_string(void) { return CF_VERSION_STRING; }

}
