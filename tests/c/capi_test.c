/* The C API compiled as C11 and linked against the shared library, as an integrating user would. */
#include <chronofabric/chronofabric.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

static int passed = 0;
static int failed = 0;

#define EXPECT(condition)                                                        \
    do {                                                                         \
        if (condition) {                                                         \
            ++passed;                                                            \
        } else {                                                                 \
            ++failed;                                                            \
            fprintf(stderr, "%s:%d: expectation failed: %s\n", __FILE__, __LINE__, #condition); \
        }                                                                        \
    } while (0)

int main(void) {
    EXPECT(cf_version() == CF_VERSION_NUMBER);
    EXPECT(strcmp(cf_version_string(), CF_VERSION_STRING) == 0);

    EXPECT(strcmp(cf_strerror(CF_OK), "success") == 0);
    EXPECT(strcmp(cf_strerror(CF_EINVAL), "invalid argument") == 0);
    EXPECT(strcmp(cf_strerror(12345), "unknown status") == 0);
    EXPECT(cf_strerror(-9999) != NULL);

    EXPECT(cf_time_now(NULL) == CF_EINVAL);
    EXPECT(strstr(cf_last_error_message(), "NULL") != NULL);

    cf_instant_t first = {-1, -1};
    cf_instant_t second = {-1, -1};
    EXPECT(cf_time_now(&first) == CF_OK);
    EXPECT(cf_time_now(&second) == CF_OK);
    EXPECT(first.femtoseconds >= 0 && first.femtoseconds < 1000000000000000LL);
    EXPECT(second.seconds > first.seconds ||
           (second.seconds == first.seconds && second.femtoseconds >= first.femtoseconds));
    const long long wall = (long long)time(NULL);
    EXPECT(first.seconds >= wall - 2 && first.seconds <= wall + 2);

    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
