/* The C API compiled as C11 and linked against the shared library, as an integrating user would. */
#define _POSIX_C_SOURCE 200809L   /* nanosleep, for the bridge test's polling loops */
#include <chronofabric/chronofabric.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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

static int message_is(const cf_message_t* m, const char* text) {
    return m->length == strlen(text) && memcmp(m->data, text, m->length) == 0;
}

/* cf_hlc_compare's order, or 99 if it failed. */
static int hlc_order(const cf_hlc_t* a, const cf_hlc_t* b) {
    int order = 99;
    return cf_hlc_compare(a, b, &order) == CF_OK ? order : 99;
}

static void test_version_errors_time(void) {
    EXPECT(cf_version() == CF_VERSION_NUMBER);
    EXPECT(strcmp(cf_version_string(), CF_VERSION_STRING) == 0);

    EXPECT(strcmp(cf_strerror(CF_OK), "success") == 0);
    EXPECT(strcmp(cf_strerror(CF_EINVAL), "invalid argument") == 0);
    EXPECT(strcmp(cf_strerror(CF_EMSGSIZE), "message too long for the topic") == 0);
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
}

static void test_engine_config(void) {
    cf_engine_config_t config;
    cf_engine_config_init(&config);
    EXPECT(config.struct_size == sizeof config);
    EXPECT(config.hlc_max_drift_ns == 100000000ULL);
    EXPECT(config.max_topics == 64);

    cf_engine_t* engine = NULL;
    EXPECT(cf_engine_create(NULL, &engine) == CF_EINVAL);
    EXPECT(cf_engine_create(&config, NULL) == CF_EINVAL);
    cf_engine_config_t wrong = config;
    wrong.struct_size = 8;   /* a struct this library never published */
    EXPECT(cf_engine_create(&wrong, &engine) == CF_EINVAL);
    EXPECT(strstr(cf_last_error_message(), "struct_size") != NULL);
    wrong = config;
    wrong.struct_size = sizeof config + 64;
    EXPECT(cf_engine_create(&wrong, &engine) == CF_EINVAL);
    wrong = config;
    wrong.max_topics = 0;
    EXPECT(cf_engine_create(&wrong, &engine) == CF_EINVAL);
    wrong = config;
    wrong.hlc_max_drift_ns = 0;
    EXPECT(cf_engine_create(&wrong, &engine) == CF_EINVAL);
    EXPECT(engine == NULL);
    EXPECT(cf_engine_destroy(NULL) == CF_OK);   /* every destroy accepts NULL */
}

static void test_hlc_and_pool(cf_engine_t* engine) {
    cf_hlc_t a, b, merged;
    EXPECT(cf_hlc_now(engine, &a) == CF_OK);
    EXPECT(cf_hlc_now(engine, &b) == CF_OK);
    EXPECT(hlc_order(&a, &b) == -1);
    EXPECT(hlc_order(&b, &a) == 1);
    EXPECT(hlc_order(&a, &a) == 0);
    EXPECT(a.node == 3);
    cf_instant_t physical;
    EXPECT(cf_hlc_to_instant(&a, &physical) == CF_OK);
    const long long wall = (long long)time(NULL);
    EXPECT(physical.seconds >= wall - 2 && physical.seconds <= wall + 2);

    /* A remote stamp slightly ahead is merged past; one an hour ahead is refused. */
    cf_hlc_t remote = {b.word + 1000, 9, 0};
    EXPECT(cf_hlc_update(engine, &remote, &merged) == CF_OK);
    EXPECT(hlc_order(&merged, &remote) == 1);
    cf_hlc_t far = {b.word + (3600ULL << 32), 9, 0};   /* 2^24 units per second, << 8 for the logical bits */
    EXPECT(cf_hlc_update(engine, &far, &merged) == CF_ERANGE);
    EXPECT(cf_hlc_now(NULL, &a) == CF_EINVAL);
    EXPECT(cf_hlc_update(engine, NULL, &merged) == CF_EINVAL);

    void* blocks[4] = {0};
    EXPECT(cf_pool_alloc(engine, 100, &blocks[0]) == CF_OK);
    EXPECT(((uintptr_t)blocks[0] & 63) == 0);
    memset(blocks[0], 0xab, 100);
    EXPECT(cf_pool_alloc(engine, 65536, &blocks[1]) == CF_OK);
    EXPECT(cf_pool_alloc(engine, 0, &blocks[2]) == CF_EINVAL);
    EXPECT(cf_pool_alloc(engine, 65537, &blocks[2]) == CF_EINVAL);
    EXPECT(cf_pool_alloc(engine, (size_t)-1, &blocks[2]) == CF_EINVAL);
    EXPECT(cf_pool_alloc(engine, 64, NULL) == CF_EINVAL);
    cf_pool_stats_t stats;
    memset(&stats, 0, sizeof stats);
    EXPECT(cf_pool_stats(engine, &stats) == CF_EINVAL);   /* struct_size not set */
    stats.struct_size = sizeof stats;
    EXPECT(cf_pool_stats(engine, &stats) == CF_OK);
    EXPECT(stats.in_use_blocks == 2);
    EXPECT(stats.in_use_bytes == 128 + 65536);
    EXPECT(stats.capacity_bytes == 11ULL * (1u << 20));
    EXPECT(cf_pool_free(engine, blocks[0]) == CF_OK);
    EXPECT(cf_pool_free(engine, blocks[1]) == CF_OK);
    EXPECT(cf_pool_free(engine, NULL) == CF_OK);
    int local = 0;
    EXPECT(cf_pool_free(engine, &local) == CF_EINVAL);
    EXPECT(cf_pool_stats(engine, &stats) == CF_OK);
    EXPECT(stats.in_use_blocks == 0);
    /* Exhaustion: the 64 KiB class holds 16 blocks of 1 MiB / 64 KiB. */
    void* big[17];
    int got = 0;
    for (int i = 0; i < 17; ++i) {
        if (cf_pool_alloc(engine, 65536, &big[i]) == CF_OK) ++got;
        else EXPECT(i == 16 && strstr(cf_last_error_message(), "exhausted") != NULL);
    }
    EXPECT(got == 16);
    for (int i = 0; i < got; ++i) EXPECT(cf_pool_free(engine, big[i]) == CF_OK);
}

static void test_topics(cf_engine_t* engine) {
    cf_topic_config_t config;
    cf_topic_config_init(&config);
    EXPECT(config.struct_size == sizeof config && config.max_publishers == 1 && config.max_subscribers == 1);
    config.name = "c.test";
    config.max_message_bytes = 16;
    config.depth = 4;

    cf_topic_t* topic = NULL;
    cf_topic_config_t bad = config;
    bad.depth = 3;
    EXPECT(cf_topic_create(engine, &bad, &topic) == CF_EINVAL);
    EXPECT(strstr(cf_last_error_message(), "depth 3") != NULL);
    bad = config;
    bad.name = NULL;
    EXPECT(cf_topic_create(engine, &bad, &topic) == CF_EINVAL);
    bad = config;
    bad.overflow = 7;
    EXPECT(cf_topic_create(engine, &bad, &topic) == CF_EINVAL);
    bad = config;
    bad.struct_size = 4;
    EXPECT(cf_topic_create(engine, &bad, &topic) == CF_EINVAL);
    EXPECT(cf_topic_create(NULL, &config, &topic) == CF_EINVAL);
    EXPECT(topic == NULL);

    EXPECT(cf_topic_create(engine, &config, &topic) == CF_OK);
    cf_topic_t* again = NULL;
    EXPECT(cf_topic_create(engine, &config, &again) == CF_EEXIST);
    cf_topic_t* found = NULL;
    EXPECT(cf_topic_find(engine, "c.test", &found) == CF_OK);
    EXPECT(found == topic);   /* one topic, one handle */
    EXPECT(cf_topic_find(engine, "nope", &again) == CF_ENOENT);

    cf_publisher_t* publisher = NULL;
    cf_subscriber_t* subscriber = NULL;
    cf_publisher_t* second = NULL;
    EXPECT(cf_publisher_create(topic, &publisher) == CF_OK);
    EXPECT(cf_publisher_create(found, &second) == CF_EUSERS);
    EXPECT(cf_subscriber_create(found, &subscriber) == CF_OK);
    EXPECT(cf_topic_destroy(topic, 0) == CF_EBUSY);
    EXPECT(cf_engine_destroy(engine) == CF_EBUSY);
    EXPECT(strstr(cf_last_error_message(), "2 publishers/subscribers") != NULL);

    cf_message_t messages[8];
    EXPECT(cf_subscriber_poll(subscriber, messages, 8) == 0);
    EXPECT(cf_publisher_publish(publisher, "one", 3) == CF_OK);
    EXPECT(cf_publisher_publish(publisher, "two", 3) == CF_OK);
    void* slot = NULL;
    EXPECT(cf_publisher_claim(publisher, 16, &slot) == CF_OK);
    EXPECT(cf_publisher_claim(publisher, 16, &slot) == CF_EBUSY);
    memcpy(slot, "three", 5);
    EXPECT(cf_publisher_commit(publisher, 17) == CF_EINVAL);
    EXPECT(cf_publisher_commit(publisher, 5) == CF_OK);
    EXPECT(cf_publisher_commit(publisher, 5) == CF_EINVAL);
    EXPECT(cf_publisher_publish(publisher, "0123456789abcdefX", 17) == CF_EMSGSIZE);
    EXPECT(strstr(cf_last_error_message(), "max_message_bytes (16)") != NULL);
    EXPECT(cf_publisher_publish(publisher, "four", 4) == CF_OK);
    EXPECT(cf_publisher_publish(publisher, "five", 4) == CF_EAGAIN);   /* depth 4: full until the subscriber releases */
    EXPECT(cf_publisher_publish(publisher, NULL, 3) == CF_EINVAL);
    EXPECT(cf_publisher_publish(NULL, "x", 1) == CF_EINVAL);

    EXPECT(cf_subscriber_poll(subscriber, messages, 2) == 2);
    EXPECT(message_is(&messages[0], "one") && messages[0].sequence == 0);
    EXPECT(message_is(&messages[1], "two") && messages[1].sequence == 1);
    EXPECT(hlc_order(&messages[0].stamp, &messages[1].stamp) == -1);
    EXPECT(cf_subscriber_poll(subscriber, messages, 8) == 2);   /* releases the first two */
    EXPECT(message_is(&messages[0], "three") && messages[0].sequence == 2);
    EXPECT(message_is(&messages[1], "four") && messages[1].sequence == 3);
    EXPECT(cf_subscriber_release(subscriber) == CF_OK);
    EXPECT(cf_publisher_publish(publisher, "five", 4) == CF_OK);
    EXPECT(cf_subscriber_poll(subscriber, messages, 8) == 1);
    EXPECT(message_is(&messages[0], "five") && messages[0].sequence == 4);
    EXPECT(cf_subscriber_poll(subscriber, NULL, 8) == CF_EINVAL);
    EXPECT(cf_subscriber_poll(NULL, messages, 8) == CF_EINVAL);
    /* A burst: the free places (3 of 4: "five" is still held), in order, with consecutive stamps. */
    const void* burst[5] = {"six", "seven", "", "nine", "ten"};
    const uint32_t burst_lengths[5] = {3, 5, 0, 4, 3};
    const uint32_t too_long[2] = {3, 17};
    EXPECT(cf_publisher_publish_batch(publisher, burst, too_long, 2) == CF_EMSGSIZE);
    EXPECT(cf_publisher_publish_batch(publisher, NULL, burst_lengths, 2) == CF_EINVAL);
    EXPECT(cf_publisher_publish_batch(publisher, NULL, NULL, 0) == 0);
    EXPECT(cf_publisher_publish_batch(publisher, burst, burst_lengths, (uint32_t)-1) == CF_EINVAL);   /* an int -1 */
    EXPECT(strstr(cf_last_error_message(), "INT_MAX") != NULL);
    EXPECT(cf_publisher_publish_batch(publisher, burst, burst_lengths, (uint32_t)INT32_MAX + 1) == CF_EINVAL);
    EXPECT(cf_publisher_publish_batch(NULL, burst, burst_lengths, 1) == CF_EINVAL);
    EXPECT(cf_publisher_publish_batch(publisher, burst, burst_lengths, 5) == 3);
    EXPECT(cf_subscriber_poll(subscriber, messages, 8) == 3);
    EXPECT(message_is(&messages[0], "six") && messages[0].sequence == 5);
    EXPECT(message_is(&messages[1], "seven") && messages[1].sequence == 6);
    EXPECT(messages[2].length == 0 && messages[2].sequence == 7);
    EXPECT(messages[1].stamp.word == messages[0].stamp.word + 1 && messages[2].stamp.word == messages[1].stamp.word + 1);
    uint64_t lost = 99;
    EXPECT(cf_subscriber_lost(subscriber, &lost) == CF_OK && lost == 0);
    EXPECT(cf_subscriber_maintain(subscriber) == 0);

    EXPECT(cf_subscriber_destroy(subscriber) == CF_OK);
    EXPECT(cf_publisher_destroy(publisher) == CF_OK);
    EXPECT(cf_topic_destroy(topic, 0) == CF_OK);
    EXPECT(cf_topic_find(engine, "c.test", &again) == CF_ENOENT);
    EXPECT(cf_topic_destroy(NULL, 0) == CF_OK);
}

static void test_lossy(cf_engine_t* engine) {
    cf_topic_config_t config;
    cf_topic_config_init(&config);
    config.name = "c.lossy";
    config.max_message_bytes = 8;
    config.depth = 8;
    config.overflow = CF_OVERFLOW_LOSSY;
    cf_topic_t* topic = NULL;
    cf_publisher_t* publisher = NULL;
    cf_subscriber_t* subscriber = NULL;
    EXPECT(cf_topic_create(engine, &config, &topic) == CF_OK);
    EXPECT(cf_publisher_create(topic, &publisher) == CF_OK);
    EXPECT(cf_subscriber_create(topic, &subscriber) == CF_OK);
    for (uint64_t i = 0; i < 20; ++i) EXPECT(cf_publisher_publish(publisher, &i, sizeof i) == CF_OK);   /* never waits */
    cf_message_t messages[64];
    int seen = 0, n;
    uint64_t last = 0, next_sequence = 0, jumps = 0;
    while ((n = cf_subscriber_poll(subscriber, messages, 64)) > 0) {
        seen += n;
        memcpy(&last, messages[n - 1].data, sizeof last);
        for (int i = 0; i < n; ++i) {   /* the payload is the sequence: what was skipped is what was lost */
            jumps += messages[i].sequence - next_sequence;
            next_sequence = messages[i].sequence + 1;
            EXPECT(memcmp(messages[i].data, &messages[i].sequence, sizeof last) == 0);
        }
    }
    uint64_t lost = 0;
    EXPECT(cf_subscriber_lost(subscriber, &lost) == CF_OK);
    EXPECT((uint64_t)seen + lost == 20);
    EXPECT(jumps == lost);   /* on a lossy topic with one publisher, every jump is a loss */
    EXPECT(lost >= 12);
    EXPECT(last == 19);
    EXPECT(cf_subscriber_destroy(subscriber) == CF_OK);
    EXPECT(cf_publisher_destroy(publisher) == CF_OK);
    EXPECT(cf_topic_destroy(topic, 0) == CF_OK);
}

/* cf_pool_free refuses what is not an allocated block of this engine's pool, and the pool stays whole. */
static void test_pool_bad_frees(cf_engine_t* engine) {
    void* block = NULL;
    EXPECT(cf_pool_alloc(engine, 200, &block) == CF_OK);   /* a 256 B block */
    EXPECT(cf_pool_free(engine, (char*)block + 64) == CF_EINVAL);
    EXPECT(strstr(cf_last_error_message(), "interior pointer") != NULL);
    EXPECT(cf_pool_free(engine, (char*)block + 3) == CF_EINVAL);
    EXPECT(strstr(cf_last_error_message(), "misaligned") != NULL);
    EXPECT(cf_pool_free(engine, block) == CF_OK);
    EXPECT(cf_pool_free(engine, block) == CF_EINVAL);   /* double free */
    EXPECT(strstr(cf_last_error_message(), "double free") != NULL);
    void* first = NULL;
    void* second = NULL;
    EXPECT(cf_pool_alloc(engine, 200, &first) == CF_OK);
    EXPECT(cf_pool_alloc(engine, 200, &second) == CF_OK);
    EXPECT(first != second);
    EXPECT(cf_pool_free(engine, first) == CF_OK);
    EXPECT(cf_pool_free(engine, second) == CF_OK);
    EXPECT(cf_pool_free(engine, first) == CF_EINVAL);

    /* Another engine's block. */
    cf_engine_config_t config;
    cf_engine_config_init(&config);
    config.prefer_hugepages = 0;
    config.pool_bytes_per_class = 65536;
    cf_engine_t* other = NULL;
    EXPECT(cf_engine_create(&config, &other) == CF_OK);
    if (other != NULL) {
        void* foreign = NULL;
        EXPECT(cf_pool_alloc(other, 64, &foreign) == CF_OK);
        EXPECT(cf_pool_free(engine, foreign) == CF_EINVAL);
        EXPECT(cf_pool_free(other, foreign) == CF_OK);
        EXPECT(cf_engine_destroy(other) == CF_OK);
    }
    cf_pool_stats_t stats;
    memset(&stats, 0, sizeof stats);
    stats.struct_size = sizeof stats;
    EXPECT(cf_pool_stats(engine, &stats) == CF_OK && stats.in_use_blocks == 0);
}

/* Counts whose bytes cannot be one object: (size_t)-1 (an int -1 passed by mistake), a count whose byte span
 * overflows size_t, and one just past PTRDIFF_MAX bytes. Each is CF_EINVAL with a message, never a crash, although
 * every array pointer is valid. */
static void test_impossible_counts(void) {
    double a[4] = {1, 2, 3, 4}, b[4] = {5, 6, 7, 8}, out = -1;
    float af[4] = {1, 2, 3, 4}, bf[4] = {5, 6, 7, 8}, outf = -1;
    const size_t f64_counts[3] = {(size_t)-1, SIZE_MAX / sizeof(double) + 1, (size_t)PTRDIFF_MAX / sizeof(double) + 1};
    const size_t f32_counts[3] = {(size_t)-1, SIZE_MAX / sizeof(float) + 1, (size_t)PTRDIFF_MAX / sizeof(float) + 1};
    const size_t u64_counts[3] = {(size_t)-1, SIZE_MAX / sizeof(uint64_t) + 1,
                                  (size_t)PTRDIFF_MAX / sizeof(uint64_t) + 1};
    const size_t byte_counts[3] = {(size_t)-1, SIZE_MAX / 2 + 1, (size_t)PTRDIFF_MAX + 1};
    uint32_t xs[4] = {1, 2, 3, 4}, ys[4] = {5, 6, 7, 8}, zs[4] = {9, 10, 11, 12};
    uint64_t codes[4] = {0};
    uint32_t crc32 = 0;
    uint64_t crc64 = 0;
    for (int i = 0; i < 3; ++i) {
        const size_t n = f64_counts[i], nf = f32_counts[i];
        EXPECT(cf_dot_f64(n, a, b, &out) == CF_EINVAL && out == -1);
        EXPECT(strstr(cf_last_error_message(), "larger than any object") != NULL);
        EXPECT(cf_dot_f32(nf, af, bf, &outf) == CF_EINVAL && outf == -1);
        EXPECT(cf_axpy_f64(n, 2.0, a, b) == CF_EINVAL && b[0] == 5);
        EXPECT(cf_axpy_f32(nf, 2.0f, af, bf) == CF_EINVAL && bf[0] == 5);
        EXPECT(strstr(cf_last_error_message(), "cf_axpy") != NULL);
        /* gemv: m, n or lda impossible, in both layouts and transposes. */
        EXPECT(cf_gemv_f64(CF_ROW_MAJOR, CF_NO_TRANS, n, 1, 1.0, a, 1, b, 0.0, a) == CF_EINVAL);
        EXPECT(cf_gemv_f64(CF_COL_MAJOR, CF_TRANS, 1, n, 1.0, a, 1, b, 0.0, a) == CF_EINVAL);
        EXPECT(cf_gemv_f64(CF_ROW_MAJOR, CF_NO_TRANS, 2, 2, 1.0, a, n, b, 0.0, a) == CF_EINVAL);
        EXPECT(cf_gemv_f32(CF_COL_MAJOR, CF_NO_TRANS, nf, 1, 1.0f, af, nf, bf, 0.0f, af) == CF_EINVAL);
        /* gemm: each of m, n, k and the leading dimensions. */
        EXPECT(cf_gemm_f64(CF_ROW_MAJOR, CF_NO_TRANS, CF_NO_TRANS, n, 1, 1, 1.0, a, 1, b, 1, 0.0, a, 1) == CF_EINVAL);
        EXPECT(cf_gemm_f64(CF_ROW_MAJOR, CF_NO_TRANS, CF_NO_TRANS, 1, n, 1, 1.0, a, 1, b, n, 0.0, a, n) == CF_EINVAL);
        EXPECT(cf_gemm_f64(CF_COL_MAJOR, CF_NO_TRANS, CF_NO_TRANS, 1, 1, n, 1.0, a, 1, b, n, 0.0, a, 1) == CF_EINVAL);
        EXPECT(cf_gemm_f64(CF_ROW_MAJOR, CF_NO_TRANS, CF_NO_TRANS, 2, 2, 2, 1.0, a, 2, b, 2, 0.0, a, n) == CF_EINVAL);
        EXPECT(cf_gemm_f32(CF_ROW_MAJOR, CF_TRANS, CF_NO_TRANS, 1, 1, nf, 1.0f, af, 1, bf, 1, 0.0f, af, 1) ==
               CF_EINVAL);
        EXPECT(a[0] == 1 && af[0] == 1);
        /* Morton batches: the 64-bit codes bound n. */
        const size_t nc = u64_counts[i];
        EXPECT(cf_morton_encode_2d64_batch(xs, ys, codes, nc) == CF_EINVAL && codes[0] == 0);
        EXPECT(strstr(cf_last_error_message(), "cf_morton_encode_2d64_batch") != NULL);
        EXPECT(cf_morton_decode_2d64_batch(codes, xs, ys, nc) == CF_EINVAL && xs[0] == 1);
        EXPECT(cf_morton_encode_3d64_batch(xs, ys, zs, codes, nc) == CF_EINVAL && codes[0] == 0);
        EXPECT(cf_morton_decode_3d64_batch(codes, xs, ys, zs, nc) == CF_EINVAL && zs[0] == 9);
        /* Checksums and the pool take byte counts. */
        EXPECT(cf_crc32c("123456789", byte_counts[i], &crc32) == CF_EINVAL && crc32 == 0);
        EXPECT(strstr(cf_last_error_message(), "cf_crc32c") != NULL);
        EXPECT(cf_crc64("123456789", byte_counts[i], &crc64) == CF_EINVAL && crc64 == 0);
    }
    /* Every size fits, the matrix does not: 2^31 rows of leading dimension 2^30 doubles span almost 2^64 bytes. */
    EXPECT(cf_gemv_f64(CF_ROW_MAJOR, CF_NO_TRANS, (size_t)1 << 31, 1, 1.0, a, (size_t)1 << 30, b, 0.0, a) == CF_EINVAL);
    EXPECT(strstr(cf_last_error_message(), "does not fit in memory") != NULL);
}

static void test_compute(void) {
    /* The ISA: one of ours, named, and switchable to scalar (always there) and back. */
    const int isa = cf_isa_active();
    EXPECT(isa >= CF_ISA_SCALAR && isa <= CF_ISA_NEON && cf_isa_name(isa) != NULL);
    EXPECT(cf_isa_name(7) == NULL);
    EXPECT(cf_isa_force(7) == CF_EINVAL);
#if defined(__x86_64__)
    EXPECT(cf_isa_force(CF_ISA_NEON) == CF_ENOTSUP);
    EXPECT(strstr(cf_last_error_message(), "neon") != NULL);
#endif
    EXPECT(cf_compute_prepare_thread() == CF_OK);

    const double a[4] = {1, 2, 3, 4}, b[4] = {5, 6, 7, 8}, ones[2] = {1, 1};
    for (int pass = 0; pass < 2; ++pass) {   /* the best ISA, then scalar */
        if (pass == 1) EXPECT(cf_isa_force(CF_ISA_SCALAR) == CF_OK && cf_isa_active() == CF_ISA_SCALAR);
        double dot = 0;
        EXPECT(cf_dot_f64(4, a, b, &dot) == CF_OK && dot == 70);
        float xf[3] = {1, 2, 3}, yf[3] = {4, 5, 6}, dotf = 0;
        EXPECT(cf_dot_f32(3, xf, yf, &dotf) == CF_OK && dotf == 32);
        EXPECT(cf_axpy_f32(3, 2.0f, xf, yf) == CF_OK && yf[0] == 6 && yf[1] == 9 && yf[2] == 12);
        double y[2] = {100, 100};
        EXPECT(cf_gemv_f64(CF_ROW_MAJOR, CF_NO_TRANS, 2, 2, 1.0, a, 2, ones, 0.0, y) == CF_OK);
        EXPECT(y[0] == 3 && y[1] == 7);
        EXPECT(cf_gemv_f64(CF_ROW_MAJOR, CF_TRANS, 2, 2, 1.0, a, 2, ones, 1.0, y) == CF_OK);
        EXPECT(y[0] == 7 && y[1] == 13);   /* A^T x added to y */
        double c[4] = {-1, -1, -1, -1};
        EXPECT(cf_gemm_f64(CF_ROW_MAJOR, CF_NO_TRANS, CF_NO_TRANS, 2, 2, 2, 1.0, a, 2, b, 2, 0.0, c, 2) == CF_OK);
        EXPECT(c[0] == 19 && c[1] == 22 && c[2] == 43 && c[3] == 50);
        EXPECT(cf_gemm_f64(CF_COL_MAJOR, CF_NO_TRANS, CF_NO_TRANS, 2, 2, 2, 1.0, a, 2, b, 2, 0.0, c, 2) == CF_OK);
        EXPECT(c[0] == 23 && c[1] == 34 && c[2] == 31 && c[3] == 46);
        float af[4] = {1, 2, 3, 4}, bf[4] = {5, 6, 7, 8}, cf[4] = {1, 1, 1, 1};
        EXPECT(cf_gemm_f32(CF_ROW_MAJOR, CF_TRANS, CF_NO_TRANS, 2, 2, 2, 2.0f, af, 2, bf, 2, 1.0f, cf, 2) == CF_OK);
        EXPECT(cf[0] == 53 && cf[1] == 61 && cf[2] == 77 && cf[3] == 89);   /* 2 A^T B + C */
    }
    EXPECT(cf_isa_force(isa) == CF_OK && cf_isa_active() == isa);

    /* Bad arguments: NULLs, unknown layout or transpose, leading dimensions too small. */
    double out = 0, c[4];
    EXPECT(cf_dot_f64(4, NULL, b, &out) == CF_EINVAL);
    EXPECT(cf_dot_f64(4, a, b, NULL) == CF_EINVAL);
    EXPECT(cf_dot_f64(0, NULL, NULL, &out) == CF_OK && out == 0);
    EXPECT(cf_axpy_f64(2, 1.0, a, NULL) == CF_EINVAL);
    EXPECT(cf_gemv_f64(5, CF_NO_TRANS, 2, 2, 1.0, a, 2, ones, 0.0, c) == CF_EINVAL);
    EXPECT(cf_gemv_f64(CF_ROW_MAJOR, 9, 2, 2, 1.0, a, 2, ones, 0.0, c) == CF_EINVAL);
    EXPECT(cf_gemv_f64(CF_ROW_MAJOR, CF_NO_TRANS, 2, 2, 1.0, a, 1, ones, 0.0, c) == CF_EINVAL);
    EXPECT(cf_gemm_f64(CF_ROW_MAJOR, CF_NO_TRANS, CF_NO_TRANS, 2, 2, 2, 1.0, a, 2, b, 1, 0.0, c, 2) == CF_EINVAL);
    EXPECT(strstr(cf_last_error_message(), "ldb") != NULL);
    EXPECT(cf_gemm_f64(CF_ROW_MAJOR, CF_NO_TRANS, CF_NO_TRANS, 2, 2, 2, 1.0, a, 2, b, 2, 0.0, NULL, 2) == CF_EINVAL);
    EXPECT(cf_gemm_f64(CF_ROW_MAJOR, 3, CF_NO_TRANS, 2, 2, 2, 1.0, a, 2, b, 2, 0.0, c, 2) == CF_EINVAL);
}

static void test_codes(void) {
    /* Morton: x in the low bit, then y (then z); bits beyond the width are ignored. */
    EXPECT(cf_morton_encode_2d32(3, 5) == 0x27);
    EXPECT(cf_morton_encode_2d32(0x1ffff, 0) == 0x55555555u);
    EXPECT(cf_morton_encode_2d64(0xffffffffu, 0) == 0x5555555555555555ull);
    EXPECT(cf_morton_encode_3d32(1, 1, 1) == 7 && cf_morton_encode_3d64(2, 0, 1) == 12);
    uint32_t x = 0, y = 0, z = 0;
    EXPECT(cf_morton_decode_2d32(0x27, &x, &y) == CF_OK && x == 3 && y == 5);
    EXPECT(cf_morton_decode_2d64(cf_morton_encode_2d64(123456789u, 987654321u), &x, &y) == CF_OK);
    EXPECT(x == 123456789u && y == 987654321u);
    EXPECT(cf_morton_decode_3d32(cf_morton_encode_3d32(1023, 5, 512), &x, &y, &z) == CF_OK);
    EXPECT(x == 1023 && y == 5 && z == 512);
    EXPECT(cf_morton_decode_3d64(cf_morton_encode_3d64(0x1fffff, 77, 0x100000), &x, &y, &z) == CF_OK);
    EXPECT(x == 0x1fffff && y == 77 && z == 0x100000);
    EXPECT(cf_morton_decode_2d32(1, NULL, &y) == CF_EINVAL);
    EXPECT(cf_morton_decode_3d64(1, &x, &y, NULL) == CF_EINVAL);
    const uint32_t xs[5] = {0, 1, 2, 3, 0xffffffffu}, ys[5] = {0, 0, 1, 3, 1}, zs[5] = {0, 1, 0, 7, 0x1fffff};
    uint64_t codes[5];
    uint32_t bx[5], by[5], bz[5];
    EXPECT(cf_morton_encode_2d64_batch(xs, ys, codes, 5) == CF_OK);
    for (int i = 0; i < 5; ++i) EXPECT(codes[i] == cf_morton_encode_2d64(xs[i], ys[i]));
    EXPECT(cf_morton_decode_2d64_batch(codes, bx, by, 5) == CF_OK);
    for (int i = 0; i < 5; ++i) EXPECT(bx[i] == xs[i] && by[i] == ys[i]);
    EXPECT(cf_morton_encode_3d64_batch(xs, ys, zs, codes, 5) == CF_OK);
    for (int i = 0; i < 5; ++i) EXPECT(codes[i] == cf_morton_encode_3d64(xs[i], ys[i], zs[i]));
    EXPECT(cf_morton_decode_3d64_batch(codes, bx, by, bz, 5) == CF_OK);
    for (int i = 0; i < 4; ++i) EXPECT(bx[i] == xs[i] && by[i] == ys[i] && bz[i] == zs[i]);
    EXPECT(bx[4] == 0x1fffff);   /* a 3D code keeps 21 bits of x */
    EXPECT(cf_morton_encode_2d64_batch(NULL, NULL, NULL, 0) == CF_OK);
    EXPECT(cf_morton_encode_2d64_batch(xs, NULL, codes, 5) == CF_EINVAL);
    EXPECT(cf_morton_decode_3d64_batch(codes, bx, by, NULL, 5) == CF_EINVAL);
    const char* impl = cf_morton_impl_name();
    EXPECT(strcmp(impl, "bmi2") == 0 || strcmp(impl, "portable") == 0 || strcmp(impl, "neon") == 0);

    /* Checksums: the standard check values, and the same value over any split. */
    uint32_t crc32 = 0;
    uint64_t crc64 = 0;
    EXPECT(cf_crc32c("123456789", 9, &crc32) == CF_OK && crc32 == 0xE3069283u);
    EXPECT(cf_crc64("123456789", 9, &crc64) == CF_OK && crc64 == 0x995DC9BBDF1939FAull);
    crc32 = 0;
    crc64 = 0;
    EXPECT(cf_crc32c("1234", 4, &crc32) == CF_OK && cf_crc32c("56789", 5, &crc32) == CF_OK && crc32 == 0xE3069283u);
    EXPECT(cf_crc64("12345678", 8, &crc64) == CF_OK && cf_crc64("9", 1, &crc64) == CF_OK);
    EXPECT(crc64 == 0x995DC9BBDF1939FAull);
    EXPECT(cf_crc32c(NULL, 0, &crc32) == CF_OK && crc32 == 0xE3069283u);   /* nothing appended */
    EXPECT(cf_crc32c(NULL, 3, &crc32) == CF_EINVAL);
    EXPECT(cf_crc64("x", 1, NULL) == CF_EINVAL);
}

/* A clock exactly one second ahead of cf_time_now's: the peer's offset is +1 s (or -1 s seen from the peer). */
static cf_instant_t clock_one_second_ahead(void* context) {
    cf_instant_t now = {0, 0};
    if (cf_time_now(&now) != CF_OK) return now;
    now.seconds += *(const int64_t*)context;
    return now;
}

static int wait_for_messages(cf_bridge_t* a, cf_bridge_t* b, cf_subscriber_t* subscriber, cf_message_t* out,
                             int wanted) {
    int got = 0;
    for (int round = 0; round < 200000 && got < wanted; ++round) {   /* bounded: loopback does not lose these */
        if (cf_bridge_poll(a) < 0 || cf_bridge_poll(b) < 0) return -1;
        const int n = cf_subscriber_poll(subscriber, out + got, (uint32_t)(wanted - got));
        if (n < 0) return -1;
        got += n;
        const struct timespec pause = {0, 20000};
        nanosleep(&pause, NULL);
    }
    return got;
}

/* An in-process topic of 64-byte messages, depth 16, for the bridge tests (NULL, counted as a failure, if it
 * cannot be made). */
static cf_topic_t* bridge_topic(cf_engine_t* engine, const char* name) {
    cf_topic_config_t config;
    cf_topic_config_init(&config);
    config.max_message_bytes = 64;
    config.depth = 16;
    config.name = name;
    cf_topic_t* topic = NULL;
    EXPECT(cf_topic_create(engine, &config, &topic) == CF_OK);
    return topic;
}

static void test_bridge(void) {
    cf_engine_config_t engine_config;
    cf_engine_config_init(&engine_config);
    engine_config.prefer_hugepages = 0;
    engine_config.pool_bytes_per_class = 65536;
    cf_engine_t* a = NULL;
    cf_engine_t* b = NULL;
    engine_config.node_id = 11;
    EXPECT(cf_engine_create(&engine_config, &a) == CF_OK);
    engine_config.node_id = 12;
    EXPECT(cf_engine_create(&engine_config, &b) == CF_OK);
    if (a == NULL || b == NULL) return;

    cf_bridge_config_t config;
    cf_bridge_config_init(&config);
    EXPECT(config.struct_size == sizeof config && config.max_datagram_bytes == 1472);
    EXPECT(config.probe_interval_ns == 10000000ULL && config.max_topics == 64 && config.buffers == 4096);
    EXPECT(config.peer == NULL && config.bind == NULL && config.driver == NULL && config.now == NULL);
    config.bind = "127.0.0.1:0";
    config.driver = "socket";
    config.buffers = 1024;
    config.probe_interval_ns = 1000000;

    cf_bridge_t* bridge_a = NULL;
    cf_bridge_t* bridge_b = NULL;
    cf_bridge_config_t bad = config;
    EXPECT(cf_bridge_create(NULL, &config, &bridge_a) == CF_EINVAL);
    EXPECT(cf_bridge_create(a, NULL, &bridge_a) == CF_EINVAL);
    EXPECT(cf_bridge_create(a, &config, NULL) == CF_EINVAL);
    bad.struct_size = 4;
    EXPECT(cf_bridge_create(a, &bad, &bridge_a) == CF_EINVAL);
    EXPECT(strstr(cf_last_error_message(), "struct_size") != NULL);
    bad = config;
    bad.bind = "localhost:0";   /* numeric addresses only */
    EXPECT(cf_bridge_create(a, &bad, &bridge_a) == CF_EINVAL);
    bad = config;
    bad.peer = "10.0.0.1";   /* no port */
    EXPECT(cf_bridge_create(a, &bad, &bridge_a) == CF_EINVAL);
    bad = config;
    bad.driver = "pigeon";
    EXPECT(cf_bridge_create(a, &bad, &bridge_a) == CF_EINVAL);
    EXPECT(strstr(cf_last_error_message(), "pigeon") != NULL);
    bad = config;
    bad.buffers = 10;
    EXPECT(cf_bridge_create(a, &bad, &bridge_a) == CF_EINVAL);
    bad = config;
    bad.max_datagram_bytes = 20;
    EXPECT(cf_bridge_create(a, &bad, &bridge_a) == CF_EINVAL);
    EXPECT(strstr(cf_last_error_message(), "max_datagram_bytes") != NULL);
    bad = config;
    bad.max_topics = 0;
    EXPECT(cf_bridge_create(a, &bad, &bridge_a) == CF_EINVAL);
    EXPECT(bridge_a == NULL);

    EXPECT(cf_bridge_create(a, &config, &bridge_a) == CF_OK);
    char address_a[64] = "", address_b[64] = "";
    EXPECT(cf_bridge_local_address(bridge_a, address_a, sizeof address_a) == CF_OK);
    EXPECT(strncmp(address_a, "127.0.0.1:", 10) == 0 && strcmp(address_a, "127.0.0.1:0") != 0);
    EXPECT(cf_bridge_local_address(bridge_a, address_b, 4) == CF_EINVAL);
    EXPECT(cf_bridge_local_address(bridge_a, NULL, 64) == CF_EINVAL);
    EXPECT(cf_bridge_local_address(bridge_a, address_b, (size_t)-1) == CF_EINVAL);   /* an int -1 */
    EXPECT(strstr(cf_last_error_message(), "larger than any object") != NULL);
    EXPECT(cf_bridge_local_address(bridge_a, address_b, (size_t)PTRDIFF_MAX + 1) == CF_EINVAL);
    EXPECT(cf_bridge_local_address(NULL, address_b, 64) == CF_EINVAL);
    /* The kernel's refusal is a documented code, never a raw errno: the address bridge_a holds is taken. */
    cf_bridge_t* taken = NULL;
    bad = config;
    bad.bind = address_a;
    EXPECT(cf_bridge_create(b, &bad, &taken) == CF_EADDRINUSE);
    EXPECT(taken == NULL);
    int64_t one_second = 1;
    cf_bridge_config_t config_b = config;
    config_b.peer = address_a;
    config_b.now = clock_one_second_ahead;
    config_b.now_context = &one_second;
    EXPECT(cf_bridge_create(b, &config_b, &bridge_b) == CF_OK);
    if (bridge_a == NULL || bridge_b == NULL) return;
    EXPECT(cf_bridge_local_address(bridge_b, address_b, sizeof address_b) == CF_OK);
    EXPECT(cf_bridge_set_peer(bridge_a, "nonsense") == CF_EINVAL);
    EXPECT(cf_bridge_set_peer(bridge_a, NULL) == CF_EINVAL);
    EXPECT(cf_bridge_set_peer(NULL, address_b) == CF_EINVAL);
    EXPECT(cf_bridge_set_peer(bridge_a, address_b) == CF_OK);

    cf_topic_t* out_topic = bridge_topic(a, "c.bridge.out");
    cf_topic_t* other_topic = bridge_topic(a, "c.bridge.other");
    cf_topic_t* in_topic = bridge_topic(b, "c.bridge.in");

    EXPECT(cf_bridge_forward(NULL, out_topic, 5) == CF_EINVAL);
    EXPECT(cf_bridge_forward(bridge_a, NULL, 5) == CF_EINVAL);
    EXPECT(cf_bridge_forward(bridge_a, in_topic, 5) == CF_EINVAL);   /* engine b's topic */
    EXPECT(strstr(cf_last_error_message(), "another engine") != NULL);
    EXPECT(cf_bridge_forward(bridge_a, out_topic, 5) == CF_OK);
    EXPECT(cf_bridge_forward(bridge_a, out_topic, 6) == CF_EUSERS);   /* its one subscriber is the bridge */
    EXPECT(cf_bridge_forward(bridge_a, other_topic, 5) == CF_EEXIST);
    EXPECT(cf_bridge_republish(NULL, 5, in_topic) == CF_EINVAL);
    EXPECT(cf_bridge_republish(bridge_b, 5, NULL) == CF_EINVAL);
    EXPECT(cf_bridge_republish(bridge_b, 5, out_topic) == CF_EINVAL);
    EXPECT(cf_bridge_republish(bridge_b, 5, in_topic) == CF_OK);
    EXPECT(cf_bridge_republish(bridge_b, 5, in_topic) == CF_EEXIST);
    EXPECT(cf_topic_destroy(out_topic, 0) == CF_EBUSY);   /* held by the bridge */

    int64_t offset_ns = 7;
    uint64_t bound_ns = 7;
    double drift_ppm = 7;
    EXPECT(cf_bridge_clock_offset(bridge_a, &offset_ns, &bound_ns, &drift_ppm) == CF_EAGAIN);
    EXPECT(offset_ns == 7 && bound_ns == 7);
    EXPECT(cf_bridge_clock_offset(bridge_a, NULL, &bound_ns, NULL) == CF_EINVAL);
    EXPECT(cf_bridge_clock_offset(NULL, &offset_ns, &bound_ns, NULL) == CF_EINVAL);

    cf_publisher_t* publisher = NULL;
    cf_subscriber_t* subscriber = NULL;
    EXPECT(cf_publisher_create(out_topic, &publisher) == CF_OK);
    EXPECT(cf_subscriber_create(in_topic, &subscriber) == CF_OK);
    EXPECT(cf_publisher_publish(publisher, "one", 3) == CF_OK);
    EXPECT(cf_publisher_publish(publisher, "two", 3) == CF_OK);
    EXPECT(cf_publisher_publish(publisher, "three", 5) == CF_OK);
    cf_message_t messages[3];
    EXPECT(wait_for_messages(bridge_a, bridge_b, subscriber, messages, 3) == 3);
    EXPECT(message_is(&messages[0], "one") && messages[0].sequence == 0);
    EXPECT(message_is(&messages[1], "two") && messages[1].sequence == 1);
    EXPECT(message_is(&messages[2], "three") && messages[2].sequence == 2);
    EXPECT(messages[0].stamp.node == 12);   /* stamped by engine b's clock, after merging a's */
    EXPECT(cf_subscriber_release(subscriber) == CF_OK);

    cf_bridge_topic_stats_t topic_stats;
    memset(&topic_stats, 0, sizeof topic_stats);
    EXPECT(cf_bridge_topic_stats(bridge_b, 5, &topic_stats) == CF_EINVAL);   /* struct_size unset */
    topic_stats.struct_size = sizeof topic_stats;
    EXPECT(cf_bridge_topic_stats(bridge_b, 5, &topic_stats) == CF_OK);
    EXPECT(topic_stats.received == 3 && topic_stats.republished == 3 && topic_stats.gaps == 0);
    EXPECT(topic_stats.duplicates == 0 && topic_stats.late == 0 && topic_stats.misaligned == 0);
    EXPECT(cf_bridge_topic_stats(bridge_a, 5, &topic_stats) == CF_OK && topic_stats.forwarded == 3);
    EXPECT(cf_bridge_topic_stats(bridge_b, 99, &topic_stats) == CF_ENOENT);
    EXPECT(cf_bridge_topic_stats(NULL, 5, &topic_stats) == CF_EINVAL);
    cf_bridge_stats_t stats;
    memset(&stats, 0, sizeof stats);
    stats.struct_size = sizeof stats;
    EXPECT(cf_bridge_stats(bridge_a, &stats) == CF_OK && stats.frames_out == 3 && stats.datagrams_out >= 1);
    EXPECT(cf_bridge_stats(bridge_b, &stats) == CF_OK && stats.frames_in == 3 && stats.rejected_datagrams == 0);
    EXPECT(stats.foreign_datagrams == 0 && stats.unknown_topic == 0 && stats.rejected_corrupt == 0);
    EXPECT(cf_bridge_stats(bridge_b, NULL) == CF_EINVAL);

    /* Probes every millisecond: the offsets, each within its bound of the truth (+1 s and -1 s exactly). */
    int ready = 0;
    for (int round = 0; round < 200000 && ready < 2; ++round) {
        EXPECT(cf_bridge_poll(bridge_a) >= 0 && cf_bridge_poll(bridge_b) >= 0);
        EXPECT(cf_bridge_stats(bridge_a, &stats) == CF_OK);
        ready = stats.probes_answered >= 20;
        EXPECT(cf_bridge_stats(bridge_b, &stats) == CF_OK);
        ready += stats.probes_answered >= 20;
        const struct timespec pause = {0, 20000};
        nanosleep(&pause, NULL);
    }
    EXPECT(ready == 2);
    EXPECT(cf_bridge_clock_offset(bridge_a, &offset_ns, &bound_ns, &drift_ppm) == CF_OK);
    EXPECT(offset_ns - 1000000000LL <= (int64_t)bound_ns && 1000000000LL - offset_ns <= (int64_t)bound_ns);
    EXPECT(bound_ns < 100000000ULL && drift_ppm >= -500 && drift_ppm <= 500);
    EXPECT(cf_bridge_clock_offset(bridge_b, &offset_ns, &bound_ns, NULL) == CF_OK);
    EXPECT(offset_ns + 1000000000LL <= (int64_t)bound_ns && -1000000000LL - offset_ns <= (int64_t)bound_ns);

    EXPECT(cf_bridge_poll(NULL) == CF_EINVAL);
    EXPECT(cf_engine_destroy(a) == CF_EBUSY);
    EXPECT(cf_subscriber_destroy(subscriber) == CF_OK);
    EXPECT(cf_publisher_destroy(publisher) == CF_OK);
    EXPECT(cf_engine_destroy(a) == CF_EBUSY);   /* the bridge still holds its topic */
    EXPECT(cf_bridge_destroy(bridge_a) == CF_OK);
    EXPECT(cf_bridge_destroy(bridge_b) == CF_OK);
    EXPECT(cf_bridge_destroy(NULL) == CF_OK);
    EXPECT(cf_topic_destroy(out_topic, 0) == CF_OK);
    EXPECT(cf_engine_destroy(a) == CF_OK);
    EXPECT(cf_engine_destroy(b) == CF_OK);
}

/* Shared topics: a segment whose mode became wider than asked, or a symbolic link at its name, is refused with
 * CF_EACCES (a documented code, never a raw errno), and cf_strerror knows every code the calls return. */
static void test_shared_topic_access(cf_engine_t* engine) {
    char name[64];
    char path[160];
    snprintf(name, sizeof name, "c.access.%d", (int)getpid());
    snprintf(path, sizeof path, "/dev/shm/chronofabric-%u/topic.%s", (unsigned)geteuid(), name);
    cf_topic_config_t config;
    cf_topic_config_init(&config);
    EXPECT(config.owner_uid == CF_OWNER_SELF);
    config.name = name;
    config.max_message_bytes = 16;
    config.depth = 4;
    config.shared = 1;
    cf_topic_t* topic = NULL;
    EXPECT(cf_topic_create(engine, &config, &topic) == CF_OK);
    EXPECT(topic != NULL);
    if (topic == NULL) return;
    EXPECT(cf_topic_destroy(topic, 0) == CF_OK);   /* the segment stays: this process is alive */

    EXPECT(chmod(path, 0666) == 0);
    EXPECT(cf_topic_create(engine, &config, &topic) == CF_EACCES);
    EXPECT(strstr(cf_last_error_message(), "mode 0666") != NULL);
    EXPECT(strcmp(cf_strerror(CF_EACCES), "unknown status") != 0);
    config.mode = 0666;   /* asking for that much accepts it */
    EXPECT(cf_topic_create(engine, &config, &topic) == CF_OK);
    EXPECT(cf_topic_destroy(topic, 1) == CF_OK);
    config.mode = 0;

    EXPECT(symlink("/etc/passwd", path) == 0);
    EXPECT(cf_topic_create(engine, &config, &topic) == CF_EACCES);
    EXPECT(strstr(cf_last_error_message(), "symbolic link") != NULL);
    EXPECT(unlink(path) == 0);

    config.owner_uid = 12345;   /* another owner: for shared topics only */
    config.shared = 0;
    EXPECT(cf_topic_create(engine, &config, &topic) == CF_EINVAL);
    config.shared = 1;
    EXPECT(cf_topic_create(engine, &config, &topic) == CF_ENOENT);   /* nothing of theirs to open */
    EXPECT(strcmp(cf_strerror(CF_EADDRINUSE), "unknown status") != 0);
}

/* Keyed bridges through the C API: a key in the config, a rotation, and a keyless bridge refused both ways. */
static void test_bridge_keyed(void) {
    cf_engine_config_t engine_config;
    cf_engine_config_init(&engine_config);
    engine_config.prefer_hugepages = 0;
    engine_config.pool_bytes_per_class = 65536;
    cf_engine_t* a = NULL;
    cf_engine_t* b = NULL;
    EXPECT(cf_engine_create(&engine_config, &a) == CF_OK);
    EXPECT(cf_engine_create(&engine_config, &b) == CF_OK);
    if (a == NULL || b == NULL) return;

    cf_bridge_config_t config;
    cf_bridge_config_init(&config);
    EXPECT(config.key_length == 0 && config.next_key_length == 0);
    EXPECT(config.max_sequence_jump == 4294967296ULL && config.max_probe_age_ns == 1000000000ULL);
    config.bind = "127.0.0.1:0";
    config.driver = "socket";
    config.buffers = 1024;
    config.probe_interval_ns = 1000000;
    config.key_length = CF_BRIDGE_KEY_BYTES;
    config.key_id = 1;
    for (unsigned i = 0; i < CF_BRIDGE_KEY_BYTES; ++i) config.key[i] = (uint8_t)(i * 7 + 1);

    cf_bridge_t* bridge_a = NULL;
    cf_bridge_t* bridge_b = NULL;
    cf_bridge_t* plain = NULL;
    cf_bridge_config_t bad = config;
    bad.key_length = 16;
    EXPECT(cf_bridge_create(a, &bad, &bridge_a) == CF_EINVAL);
    EXPECT(strstr(cf_last_error_message(), "key") != NULL);
    bad = config;
    bad.next_key_length = CF_BRIDGE_KEY_BYTES;
    bad.next_key_id = 1;   /* the key's id */
    EXPECT(cf_bridge_create(a, &bad, &bridge_a) == CF_EINVAL);
    bad = config;
    bad.max_probe_age_ns = 0;
    EXPECT(cf_bridge_create(a, &bad, &bridge_a) == CF_EINVAL);
    EXPECT(bridge_a == NULL);

    char address_a[64] = "", address_b[64] = "", address_plain[64] = "";
    EXPECT(cf_bridge_create(a, &config, &bridge_a) == CF_OK);
    if (bridge_a == NULL) return;
    EXPECT(cf_bridge_local_address(bridge_a, address_a, sizeof address_a) == CF_OK);
    cf_bridge_config_t config_b = config;
    config_b.peer = address_a;
    EXPECT(cf_bridge_create(b, &config_b, &bridge_b) == CF_OK);
    if (bridge_b == NULL) return;
    EXPECT(cf_bridge_local_address(bridge_b, address_b, sizeof address_b) == CF_OK);
    EXPECT(cf_bridge_set_peer(bridge_a, address_b) == CF_OK);

    cf_topic_t* out_topic = bridge_topic(a, "c.keyed.out");
    cf_topic_t* in_topic = bridge_topic(b, "c.keyed.in");
    EXPECT(cf_bridge_forward(bridge_a, out_topic, 9) == CF_OK);
    EXPECT(cf_bridge_republish(bridge_b, 9, in_topic) == CF_OK);
    cf_publisher_t* publisher = NULL;
    cf_subscriber_t* subscriber = NULL;
    EXPECT(cf_publisher_create(out_topic, &publisher) == CF_OK);
    EXPECT(cf_subscriber_create(in_topic, &subscriber) == CF_OK);
    cf_message_t messages[2];
    EXPECT(cf_publisher_publish(publisher, "before", 6) == CF_OK);
    EXPECT(wait_for_messages(bridge_a, bridge_b, subscriber, messages, 1) == 1);
    EXPECT(message_is(&messages[0], "before"));
    EXPECT(cf_subscriber_release(subscriber) == CF_OK);

    uint8_t next[CF_BRIDGE_KEY_BYTES];
    for (unsigned i = 0; i < CF_BRIDGE_KEY_BYTES; ++i) next[i] = (uint8_t)(0xF0 - i);
    EXPECT(cf_bridge_rotate_key(bridge_a) == CF_ENOENT);
    EXPECT(cf_bridge_set_next_key(bridge_a, 2, next, 31) == CF_EINVAL);
    EXPECT(cf_bridge_set_next_key(bridge_a, 2, NULL, CF_BRIDGE_KEY_BYTES) == CF_EINVAL);
    EXPECT(cf_bridge_set_next_key(bridge_a, 2, next, CF_BRIDGE_KEY_BYTES) == CF_OK);
    EXPECT(cf_bridge_set_next_key(bridge_b, 2, next, CF_BRIDGE_KEY_BYTES) == CF_OK);
    EXPECT(cf_bridge_rotate_key(bridge_a) == CF_OK);   /* a signs with key 2, b still with key 1 */
    EXPECT(cf_publisher_publish(publisher, "after", 5) == CF_OK);
    EXPECT(wait_for_messages(bridge_a, bridge_b, subscriber, messages, 1) == 1);
    EXPECT(message_is(&messages[0], "after"));
    EXPECT(cf_subscriber_release(subscriber) == CF_OK);
    EXPECT(cf_bridge_rotate_key(bridge_b) == CF_OK);

    /* A keyless bridge aimed at a: each drops the other's datagrams, and counts them. */
    cf_bridge_config_t plain_config = config;
    plain_config.key_length = 0;
    plain_config.peer = address_a;
    EXPECT(cf_bridge_create(b, &plain_config, &plain) == CF_OK);
    if (plain == NULL) return;
    EXPECT(cf_bridge_local_address(plain, address_plain, sizeof address_plain) == CF_OK);
    EXPECT(cf_bridge_set_peer(bridge_a, address_plain) == CF_OK);
    cf_bridge_stats_t stats_a, stats_plain;
    memset(&stats_a, 0, sizeof stats_a);
    memset(&stats_plain, 0, sizeof stats_plain);
    stats_a.struct_size = sizeof stats_a;
    stats_plain.struct_size = sizeof stats_plain;
    for (int round = 0; round < 200000; ++round) {
        EXPECT(cf_bridge_poll(plain) >= 0);
        EXPECT(cf_bridge_stats(plain, &stats_plain) == CF_OK);
        if (stats_plain.probes_sent >= 5 && stats_plain.auth_unexpected >= 5) break;
        EXPECT(cf_bridge_poll(bridge_a) >= 0);
        const struct timespec pause = {0, 20000};
        nanosleep(&pause, NULL);
    }
    /* Stop the keyless one sending, then let a take in everything it sent (loopback loses none). */
    EXPECT(cf_bridge_stats(plain, &stats_plain) == CF_OK);
    for (int round = 0; round < 200000; ++round) {
        EXPECT(cf_bridge_poll(bridge_a) >= 0);
        EXPECT(cf_bridge_stats(bridge_a, &stats_a) == CF_OK);
        if (stats_a.auth_missing == stats_plain.datagrams_out) break;
        const struct timespec pause = {0, 20000};
        nanosleep(&pause, NULL);
    }
    EXPECT(stats_plain.datagrams_out >= 5 && stats_a.auth_missing == stats_plain.datagrams_out);
    EXPECT(stats_plain.auth_unexpected >= 5 && stats_plain.frames_in == 0 && stats_plain.probes_answered == 0);
    EXPECT(stats_a.auth_failed == 0 && stats_a.auth_unknown_key == 0 && stats_a.auth_unexpected == 0);
    EXPECT(stats_a.answers_unsolicited == 0 && stats_a.answers_stale == 0);

    /* A caller built against the first cf_bridge_stats_t: the newer counters are not written. */
    struct {
        cf_bridge_stats_t stats;
    } old_layout;
    memset(&old_layout, 0xAB, sizeof old_layout);
    old_layout.stats.struct_size = (uint32_t)offsetof(cf_bridge_stats_t, answers_unsolicited);
    EXPECT(cf_bridge_stats(bridge_a, &old_layout.stats) == CF_OK);
    EXPECT(old_layout.stats.auth_missing == 0xABABABABABABABABULL);

    EXPECT(cf_subscriber_destroy(subscriber) == CF_OK);
    EXPECT(cf_publisher_destroy(publisher) == CF_OK);
    EXPECT(cf_bridge_destroy(plain) == CF_OK);
    EXPECT(cf_bridge_destroy(bridge_a) == CF_OK);
    EXPECT(cf_bridge_destroy(bridge_b) == CF_OK);
    EXPECT(cf_topic_destroy(out_topic, 0) == CF_OK);
    EXPECT(cf_engine_destroy(a) == CF_OK);
    EXPECT(cf_engine_destroy(b) == CF_OK);
}

/* ---- 1.0 contracts ---------------------------------------------------------------------------------------- */

static char logged[256];
static int logged_level = -1;
static int logged_count = 0;

static void capture_log(int level, const char* message, void* user) {
    snprintf(logged, sizeof logged, "%s%s", (const char*)user, message);
    logged_level = level;
    ++logged_count;
}

/* The library never prints: an ignored CF_MORTON reaches the callback. Runs first, before anything in this process
 * chose the Morton implementation (the choice reads the environment once, on first use). */
static void test_log_callback(void) {
    EXPECT(setenv("CF_MORTON", "zorder", 1) == 0);
    EXPECT(cf_log_set_callback(capture_log, "captured: ") == CF_OK);
    const char* impl = cf_morton_impl_name();
    EXPECT(strcmp(impl, "zorder") != 0);
    EXPECT(logged_count == 1 && logged_level == CF_LOG_WARNING);
    EXPECT(strcmp(logged, "captured: CF_MORTON=zorder is not portable, bmi2 or neon; ignored") == 0);
    EXPECT(cf_log_set_callback(NULL, NULL) == CF_OK);   /* stderr again */
    EXPECT(unsetenv("CF_MORTON") == 0);
}

static cf_topic_t* make_topic(cf_engine_t* engine, const char* name, uint32_t depth, uint32_t publishers,
                              uint32_t subscribers) {
    cf_topic_config_t config;
    cf_topic_config_init(&config);
    config.name = name;
    config.max_message_bytes = 16;
    config.depth = depth;
    config.max_publishers = publishers;
    config.max_subscribers = subscribers;
    cf_topic_t* topic = NULL;
    EXPECT(cf_topic_create(engine, &config, &topic) == CF_OK);
    return topic;
}

/* Every failure leaves its own message, CF_EAGAIN included; zero-length messages; the poll cap; what maintain does to
 * the last poll; next sequence. */
static void test_publish_contracts(cf_engine_t* engine) {
    cf_topic_t* topic = make_topic(engine, "c.contracts", 128, 1, 1);
    cf_publisher_t* publisher = NULL;
    cf_subscriber_t* subscriber = NULL;
    EXPECT(cf_publisher_create(topic, &publisher) == CF_OK);
    EXPECT(cf_subscriber_create(topic, &subscriber) == CF_OK);
    if (publisher == NULL || subscriber == NULL) return;
    uint64_t next = 99;
    EXPECT(cf_publisher_next_sequence(publisher, &next) == CF_OK && next == 0);
    EXPECT(cf_publisher_next_sequence(NULL, &next) == CF_EINVAL);

    /* Zero-length messages are allowed, with or without data. */
    cf_message_t messages[CF_POLL_MAX + 8];
    EXPECT(cf_publisher_publish(publisher, NULL, 0) == CF_OK);
    EXPECT(cf_publisher_publish(publisher, "ignored", 0) == CF_OK);
    EXPECT(cf_subscriber_poll(subscriber, messages, 8) == 2);
    EXPECT(messages[0].length == 0 && messages[0].data != NULL && messages[0].sequence == 0);
    EXPECT(messages[1].length == 0 && messages[1].sequence == 1);
    void* slot = NULL;
    EXPECT(cf_publisher_claim(publisher, 0, &slot) == CF_OK && slot != NULL);
    EXPECT(cf_publisher_commit(publisher, 0) == CF_OK);
    EXPECT(cf_subscriber_poll(subscriber, messages, 8) == 1 && messages[0].length == 0);

    /* A poll returns at most CF_POLL_MAX, whatever max says. */
    for (uint32_t i = 0; i < 100; ++i) EXPECT(cf_publisher_publish(publisher, &i, sizeof i) == CF_OK);
    EXPECT(cf_publisher_next_sequence(publisher, &next) == CF_OK && next == 103);
    EXPECT(cf_subscriber_poll(subscriber, messages, 1000) == (int)CF_POLL_MAX);
    EXPECT(messages[0].sequence == 3 && messages[CF_POLL_MAX - 1].sequence == 3 + CF_POLL_MAX - 1);
    EXPECT(cf_subscriber_poll(subscriber, messages, 1000) == 100 - (int)CF_POLL_MAX);
    EXPECT(cf_subscriber_poll(subscriber, messages, 1000) == 0);

    /* maintain releases the last poll's messages (their slots go back to the publisher). */
    cf_topic_t* small = make_topic(engine, "c.maintain", 2, 1, 1);
    cf_publisher_t* small_publisher = NULL;
    cf_subscriber_t* small_subscriber = NULL;
    EXPECT(cf_publisher_create(small, &small_publisher) == CF_OK);
    EXPECT(cf_subscriber_create(small, &small_subscriber) == CF_OK);
    EXPECT(cf_publisher_publish(small_publisher, "a", 1) == CF_OK && cf_publisher_publish(small_publisher, "b", 1) == CF_OK);
    EXPECT(cf_subscriber_poll(small_subscriber, messages, 8) == 2);

    /* CF_EAGAIN after an unrelated failure: the message is the new one. */
    EXPECT(cf_time_now(NULL) == CF_EINVAL);
    EXPECT(strstr(cf_last_error_message(), "cf_time_now") != NULL);
    EXPECT(cf_publisher_publish(small_publisher, "c", 1) == CF_EAGAIN);
    EXPECT(strstr(cf_last_error_message(), "cf_publisher_publish: topic 'c.maintain' is full") != NULL);

    /* Back-pressure events: the publish refused above counts. */
    cf_topic_stats_t stats;
    memset(&stats, 0, sizeof stats);
    stats.struct_size = sizeof stats;
    EXPECT(cf_topic_stats(small, &stats) == CF_OK);
    EXPECT(stats.published == 2 && stats.depth_in_use == 2 && stats.subscriber_count == 1);
    EXPECT(stats.back_pressure_events == 1);

    EXPECT(cf_time_now(NULL) == CF_EINVAL);
    EXPECT(cf_publisher_claim(small_publisher, 1, &slot) == CF_EAGAIN);
    EXPECT(strstr(cf_last_error_message(), "cf_publisher_claim: topic 'c.maintain' is full") != NULL);

    EXPECT(cf_subscriber_maintain(small_subscriber) == 0);   /* a single-publisher topic: nothing to recover */
    EXPECT(cf_publisher_publish(small_publisher, "c", 1) == CF_OK);   /* the slots came back */
    EXPECT(cf_subscriber_poll(small_subscriber, messages, 8) == 1 && message_is(&messages[0], "c"));

    EXPECT(cf_subscriber_destroy(small_subscriber) == CF_OK);
    EXPECT(cf_publisher_destroy(small_publisher) == CF_OK);
    EXPECT(cf_topic_destroy(small, 0) == CF_OK);
    EXPECT(cf_subscriber_destroy(subscriber) == CF_OK);
    EXPECT(cf_publisher_destroy(publisher) == CF_OK);
    EXPECT(cf_topic_destroy(topic, 0) == CF_OK);
    EXPECT(cf_publisher_destroy(NULL) == CF_OK && cf_subscriber_destroy(NULL) == CF_OK);
}

/* A sequence jump without a loss: a publisher destroyed between claim and commit on a many-publisher topic. */
static void test_abandoned_claim_jump(cf_engine_t* engine) {
    cf_topic_t* topic = make_topic(engine, "c.abandoned", 8, 2, 1);
    cf_publisher_t* first = NULL;
    cf_publisher_t* second = NULL;
    cf_subscriber_t* subscriber = NULL;
    EXPECT(cf_publisher_create(topic, &first) == CF_OK);
    EXPECT(cf_publisher_create(topic, &second) == CF_OK);
    EXPECT(cf_subscriber_create(topic, &subscriber) == CF_OK);
    void* slot = NULL;
    EXPECT(cf_publisher_claim(first, 4, &slot) == CF_OK);   /* position 0 */
    EXPECT(cf_publisher_publish(second, "b", 1) == CF_OK);  /* position 1 */
    cf_message_t messages[4];
    EXPECT(cf_subscriber_poll(subscriber, messages, 4) == 0);   /* held up by the claim */
    EXPECT(cf_publisher_destroy(first) == CF_OK);                /* abandons it */
    EXPECT(cf_subscriber_poll(subscriber, messages, 4) == 1);
    EXPECT(message_is(&messages[0], "b") && messages[0].sequence == 1);
    uint64_t lost = 9, corrupt = 9;
    EXPECT(cf_subscriber_lost(subscriber, &lost) == CF_OK && lost == 0);
    EXPECT(cf_subscriber_corrupt(subscriber, &corrupt) == CF_OK && corrupt == 0);
    EXPECT(cf_subscriber_destroy(subscriber) == CF_OK);
    EXPECT(cf_publisher_destroy(second) == CF_OK);
    EXPECT(cf_topic_destroy(topic, 0) == CF_OK);
}

/* Topic stats on a two-subscriber topic; the topic list; a topic's configuration from its handle. */
static void test_topic_introspection(cf_engine_t* engine) {
    cf_topic_t* topic = make_topic(engine, "c.stats", 8, 1, 2);
    cf_publisher_t* publisher = NULL;
    cf_subscriber_t* fast = NULL;
    cf_subscriber_t* slow = NULL;
    EXPECT(cf_publisher_create(topic, &publisher) == CF_OK);
    EXPECT(cf_subscriber_create(topic, &fast) == CF_OK);
    EXPECT(cf_subscriber_create(topic, &slow) == CF_OK);
    const void* data[3] = {"x", "y", "z"};
    const uint32_t lengths[3] = {1, 1, 1};
    EXPECT(cf_publisher_publish_batch(publisher, data, lengths, 3) == 3);
    cf_message_t messages[4];
    EXPECT(cf_subscriber_poll(fast, messages, 4) == 3);
    EXPECT(cf_subscriber_release(fast) == CF_OK);

    cf_subscriber_lag_t lags[4];
    memset(lags, 0xff, sizeof lags);
    cf_topic_stats_t stats;
    memset(&stats, 0, sizeof stats);
    EXPECT(cf_topic_stats(topic, &stats) == CF_EINVAL);   /* struct_size not set */
    stats.struct_size = sizeof stats;
    stats.subscriber_capacity = 1;
    EXPECT(cf_topic_stats(topic, &stats) == CF_EINVAL);   /* a capacity without an array */
    stats.subscribers = lags;
    EXPECT(cf_topic_stats(topic, &stats) == CF_OK);
    EXPECT(stats.published == 3 && stats.depth_in_use == 3 && stats.subscriber_count == 2);
    EXPECT(lags[0].place == 0 && lags[0].lag == 0 && lags[0].lost == 0);
    EXPECT(lags[1].place == 0xffffffffu);   /* beyond the capacity: untouched */
    stats.subscriber_capacity = 4;
    EXPECT(cf_topic_stats(topic, &stats) == CF_OK);
    EXPECT(lags[1].place == 1 && lags[1].lag == 3 && lags[1].lost == 0);
    EXPECT(cf_topic_stats(NULL, &stats) == CF_EINVAL);

    /* The list holds this topic (and whatever else the engine has open). */
    cf_topic_t* listed[64];
    const int count = cf_topic_list(engine, listed, 64);
    EXPECT(count >= 1 && count <= 64);
    int found = 0;
    for (int i = 0; i < count && i < 64; ++i) found += listed[i] == topic;
    EXPECT(found == 1);
    EXPECT(cf_topic_list(engine, NULL, 0) == count);
    EXPECT(cf_topic_list(engine, NULL, 1) == CF_EINVAL);

    cf_topic_config_t config;
    cf_topic_config_init(&config);
    EXPECT(cf_topic_get_config(topic, &config) == CF_OK);
    EXPECT(strcmp(config.name, "c.stats") == 0 && config.max_message_bytes == 16 && config.depth == 8);
    EXPECT(config.max_publishers == 1 && config.max_subscribers == 2 && config.overflow == CF_OVERFLOW_BACK_PRESSURE);
    EXPECT(config.shared == 0 && config.owner_uid == CF_OWNER_SELF);
    config.struct_size = 0;
    EXPECT(cf_topic_get_config(topic, &config) == CF_EINVAL);

    EXPECT(cf_subscriber_destroy(fast) == CF_OK && cf_subscriber_destroy(slow) == CF_OK);
    EXPECT(cf_publisher_destroy(publisher) == CF_OK);
    EXPECT(cf_topic_destroy(topic, 0) == CF_OK);
}

/* Opening a shared topic by name alone; a restarted publisher continues the sequence; the layout of a peer that
 * refused an attach. */
static void test_shared_open_and_layout(cf_engine_t* engine) {
    char name[64];
    char path[160];
    snprintf(name, sizeof name, "c.open.%d", (int)getpid());
    snprintf(path, sizeof path, "/dev/shm/chronofabric-%u/topic.%s", (unsigned)geteuid(), name);
    cf_topic_t* topic = NULL;
    EXPECT(cf_topic_open(engine, name, 0, CF_OWNER_SELF, &topic) == CF_ENOENT);
    cf_topic_config_t config;
    cf_topic_config_init(&config);
    config.name = name;
    config.max_message_bytes = 24;
    config.depth = 16;
    config.max_subscribers = 3;
    config.shared = 1;
    EXPECT(cf_topic_create(engine, &config, &topic) == CF_OK);
    if (topic == NULL) return;
    cf_topic_t* again = NULL;
    EXPECT(cf_topic_open(engine, name, 0, CF_OWNER_SELF, &again) == CF_EEXIST);   /* held: cf_topic_find */
    cf_publisher_t* publisher = NULL;
    EXPECT(cf_publisher_create(topic, &publisher) == CF_OK);
    for (int i = 0; i < 5; ++i) EXPECT(cf_publisher_publish(publisher, "m", 1) == CF_OK);
    EXPECT(cf_publisher_destroy(publisher) == CF_OK);
    EXPECT(cf_topic_destroy(topic, 0) == CF_OK);   /* the segment stays: this process is alive */

    /* A process that knows only the name. */
    EXPECT(cf_topic_open(engine, name, 0, CF_OWNER_SELF, &topic) == CF_OK);
    cf_topic_config_t seen;
    cf_topic_config_init(&seen);
    EXPECT(cf_topic_get_config(topic, &seen) == CF_OK);
    EXPECT(strcmp(seen.name, name) == 0 && seen.max_message_bytes == 24 && seen.depth == 16);
    EXPECT(seen.max_publishers == 1 && seen.max_subscribers == 3 && seen.shared == 1);
    EXPECT(cf_publisher_create(topic, &publisher) == CF_OK);
    uint64_t next = 0;
    EXPECT(cf_publisher_next_sequence(publisher, &next) == CF_OK && next == 5);
    EXPECT(cf_publisher_destroy(publisher) == CF_OK);
    EXPECT(cf_topic_destroy(topic, 0) == CF_OK);

    /* A peer of another library version: its topic header says layout 9. */
    cf_topic_layout_t local, peer;
    memset(&local, 0, sizeof local);
    memset(&peer, 0, sizeof peer);
    local.struct_size = sizeof local;
    peer.struct_size = sizeof peer;
    EXPECT(cf_topic_layout_local(&local) == CF_OK && local.segment >= 1 && local.topic >= 1 && local.ring >= 1);
    EXPECT(cf_topic_peer_layout(name, CF_OWNER_SELF, &peer) == CF_OK);
    EXPECT(peer.segment == local.segment && peer.topic == local.topic && peer.ring == local.ring);
    FILE* file = fopen(path, "r+b");
    EXPECT(file != NULL);
    if (file != NULL) {
        const uint32_t version = 9;
        EXPECT(fseek(file, 8192 + 8, SEEK_SET) == 0);   /* the topic header's layout_version */
        EXPECT(fwrite(&version, sizeof version, 1, file) == 1);
        EXPECT(fclose(file) == 0);
    }
    EXPECT(cf_topic_create(engine, &config, &topic) == CF_EPROTO);
    EXPECT(cf_topic_open(engine, name, 0, CF_OWNER_SELF, &topic) == CF_EPROTO);
    EXPECT(cf_topic_peer_layout(name, CF_OWNER_SELF, &peer) == CF_OK);
    EXPECT(peer.segment == local.segment && peer.topic == 9 && peer.ring == local.ring);
    EXPECT(cf_topic_peer_layout("c.nothing.here", CF_OWNER_SELF, &peer) == CF_ENOENT);
    EXPECT(cf_topic_peer_layout(NULL, CF_OWNER_SELF, &peer) == CF_EINVAL);
    peer.struct_size = 0;
    EXPECT(cf_topic_peer_layout(name, CF_OWNER_SELF, &peer) == CF_EINVAL);
    EXPECT(unlink(path) == 0);
}

/* Waiting for messages: each idle strategy times out on an empty topic, returns at once when something is there. */
static void test_poll_wait(cf_engine_t* engine) {
    cf_topic_t* topic = make_topic(engine, "c.wait", 8, 1, 1);
    cf_publisher_t* publisher = NULL;
    cf_subscriber_t* subscriber = NULL;
    EXPECT(cf_publisher_create(topic, &publisher) == CF_OK);
    EXPECT(cf_subscriber_create(topic, &subscriber) == CF_OK);
    cf_message_t messages[4];
    const int idles[3] = {CF_IDLE_SPIN, CF_IDLE_SPIN_THEN_PAUSE, CF_IDLE_SLEEP};
    for (int i = 0; i < 3; ++i) {
        EXPECT(cf_subscriber_poll_wait(subscriber, messages, 4, 200000, idles[i]) == CF_ETIMEDOUT);
        EXPECT(strstr(cf_last_error_message(), "nothing arrived") != NULL);
        EXPECT(cf_publisher_publish(publisher, "w", 1) == CF_OK);
        EXPECT(cf_subscriber_poll_wait(subscriber, messages, 4, CF_WAIT_FOREVER, idles[i]) == 1);
        EXPECT(message_is(&messages[0], "w"));
    }
    EXPECT(cf_subscriber_poll_wait(subscriber, messages, 4, 0, CF_IDLE_SPIN) == CF_ETIMEDOUT);   /* polls once */
    EXPECT(cf_subscriber_poll_wait(subscriber, messages, 0, CF_WAIT_FOREVER, CF_IDLE_SPIN) == 0);
    EXPECT(cf_subscriber_poll_wait(subscriber, messages, 4, 0, 7) == CF_EINVAL);
    EXPECT(cf_subscriber_poll_wait(NULL, messages, 4, 0, CF_IDLE_SPIN) == CF_EINVAL);
    EXPECT(cf_subscriber_destroy(subscriber) == CF_OK);
    EXPECT(cf_publisher_destroy(publisher) == CF_OK);
    EXPECT(cf_topic_destroy(topic, 0) == CF_OK);
}

/* HLC: compare checks its arguments and orders lanes; order across an engine restart holds once the saved stamp
 * is merged. Pool: per-class counters. */
static void test_hlc_restart_and_pool_classes(cf_engine_t* engine) {
    const cf_hlc_t a = {100, 1, 1}, b = {100, 1, 2}, c = {100, 2, 0};
    int order = 7;
    EXPECT(hlc_order(&a, &b) == -1 && hlc_order(&b, &c) == -1 && hlc_order(&c, &a) == 1);
    EXPECT(cf_hlc_compare(NULL, &b, &order) == CF_EINVAL && order == 7);
    EXPECT(cf_hlc_compare(&a, NULL, &order) == CF_EINVAL);
    EXPECT(cf_hlc_compare(&a, &b, NULL) == CF_EINVAL);

    cf_engine_config_t config;
    cf_engine_config_init(&config);
    config.prefer_hugepages = 0;
    config.pool_bytes_per_class = 65536;
    cf_engine_t* first = NULL;
    EXPECT(cf_engine_create(&config, &first) == CF_OK);
    cf_hlc_t now, ahead, saved, merged;
    EXPECT(cf_hlc_now(first, &now) == CF_OK);
    ahead = now;
    ahead.word += (uint64_t)((1u << 24) / 20) << 8;   /* a peer 50 ms ahead */
    EXPECT(cf_hlc_update(first, &ahead, &saved) == CF_OK);
    EXPECT(cf_engine_destroy(first) == CF_OK);
    cf_engine_t* restarted = NULL;
    EXPECT(cf_engine_create(&config, &restarted) == CF_OK);
    EXPECT(cf_hlc_update(restarted, &saved, &merged) == CF_OK);
    EXPECT(cf_hlc_now(restarted, &now) == CF_OK);
    EXPECT(hlc_order(&saved, &merged) == -1 && hlc_order(&merged, &now) == -1);
    EXPECT(cf_engine_destroy(restarted) == CF_OK);

    uint32_t classes = 0;
    EXPECT(cf_pool_class_count(engine, &classes) == CF_OK && classes == 11);
    EXPECT(cf_pool_class_count(NULL, &classes) == CF_EINVAL);
    void* block = NULL;
    EXPECT(cf_pool_alloc(engine, 100, &block) == CF_OK);
    cf_pool_class_stats_t stats;
    memset(&stats, 0, sizeof stats);
    EXPECT(cf_pool_class_stats(engine, 1, &stats) == CF_EINVAL);   /* struct_size not set */
    stats.struct_size = sizeof stats;
    EXPECT(cf_pool_class_stats(engine, 0, &stats) == CF_OK && stats.block_bytes == 64 && stats.in_use_blocks == 0);
    EXPECT(stats.capacity_blocks == (1u << 20) / 64);
    EXPECT(cf_pool_class_stats(engine, 1, &stats) == CF_OK && stats.block_bytes == 128);
    EXPECT(stats.in_use_blocks == 1 && stats.requested_bytes == 0);   /* exact accounting is off by default */
    EXPECT(cf_pool_class_stats(engine, 11, &stats) == CF_EINVAL);
    EXPECT(cf_pool_free(engine, block) == CF_OK);

    /* With exact accounting: the bytes asked for, and the fragmentation they imply (100 of 128: 21.875 %). */
    cf_engine_config_t exact_config;
    cf_engine_config_init(&exact_config);
    exact_config.pool_bytes_per_class = 1u << 16;
    exact_config.pool_exact_accounting = 1;
    cf_engine_t* exact = NULL;
    EXPECT(cf_engine_create(&exact_config, &exact) == CF_OK);
    EXPECT(cf_pool_alloc(exact, 100, &block) == CF_OK);
    EXPECT(cf_pool_class_stats(exact, 1, &stats) == CF_OK);
    EXPECT(stats.in_use_blocks == 1 && stats.requested_bytes == 100 && stats.fragmentation_percent == 21.875);
    EXPECT(cf_pool_free(exact, block) == CF_OK);
    EXPECT(cf_pool_class_stats(exact, 1, &stats) == CF_OK && stats.in_use_blocks == 0 && stats.requested_bytes == 0);
    EXPECT(cf_engine_destroy(exact) == CF_OK);
}

/* gemv with an empty inner dimension: y = beta * y, as the definition (and gemm with k == 0) says. */
static void test_gemv_empty_inner(void) {
    double y[2] = {1, 2};
    EXPECT(cf_gemv_f64(CF_ROW_MAJOR, CF_NO_TRANS, 2, 0, 1.0, NULL, 1, NULL, 3.0, y) == CF_OK);
    EXPECT(y[0] == 3 && y[1] == 6);
    double nan_y[2] = {NAN, NAN};
    EXPECT(cf_gemv_f64(CF_COL_MAJOR, CF_TRANS, 0, 2, 1.0, NULL, 1, NULL, 0.0, nan_y) == CF_OK);
    EXPECT(nan_y[0] == 0 && nan_y[1] == 0);   /* beta == 0 writes without reading */
    float yf[3] = {1, 1, 1};
    EXPECT(cf_gemv_f32(CF_ROW_MAJOR, CF_NO_TRANS, 3, 0, 2.0f, NULL, 1, NULL, 0.5f, yf) == CF_OK);
    EXPECT(yf[0] == 0.5f && yf[2] == 0.5f);
}

int main(void) {
    test_log_callback();
    test_version_errors_time();
    test_engine_config();
    test_compute();
    test_codes();
    test_impossible_counts();
    test_bridge();
    test_bridge_keyed();
    test_gemv_empty_inner();

    cf_engine_config_t config;
    cf_engine_config_init(&config);
    config.node_id = 3;
    config.prefer_hugepages = 0;
    cf_engine_t* engine = NULL;
    EXPECT(cf_engine_create(&config, &engine) == CF_OK);
    if (engine != NULL) {
        EXPECT(cf_engine_warning(engine) != NULL);
        test_hlc_and_pool(engine);
        test_pool_bad_frees(engine);
        test_topics(engine);
        test_lossy(engine);
        test_shared_topic_access(engine);
        test_publish_contracts(engine);
        test_abandoned_claim_jump(engine);
        test_topic_introspection(engine);
        test_shared_open_and_layout(engine);
        test_poll_wait(engine);
        test_hlc_restart_and_pool_classes(engine);
        uint32_t dead = 7;
        EXPECT(cf_engine_maintain(engine, &dead) == CF_OK && dead == 0);
        EXPECT(cf_engine_destroy(engine) == CF_OK);
    }

    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
