/*
 * A publisher and a subscriber in two processes, through a shared-memory topic: the C API end to end.
 *
 *   pubsub_example subscribe NAME COUNT     waits for COUNT messages on topic NAME, checks their order
 *   pubsub_example publish NAME COUNT       publishes COUNT messages on topic NAME
 *
 * Start them in either order: whichever comes first creates the topic, the other opens it.
 */
#include <chronofabric/chronofabric.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check(int status, const char* what) {
    if (status < 0) fprintf(stderr, "pubsub_example: %s: %s (%s)\n", what, cf_strerror(status), cf_last_error_message());
    return status;
}

static int publish(cf_topic_t* topic, uint64_t count) {
    cf_publisher_t* publisher = NULL;
    if (check(cf_publisher_create(topic, &publisher), "cf_publisher_create") < 0) return 1;
    for (uint64_t i = 0; i < count;) {
        void* slot = NULL;
        const int status = cf_publisher_claim(publisher, sizeof i, &slot);   /* zero copy: write in place */
        if (status == CF_EAGAIN) continue;                           /* full: the subscriber is behind */
        if (check(status, "cf_publisher_claim") < 0) return 1;
        memcpy(slot, &i, sizeof i);
        if (check(cf_publisher_commit(publisher, sizeof i), "cf_publisher_commit") < 0) return 1;
        ++i;
    }
    printf("published %llu messages\n", (unsigned long long)count);
    return check(cf_publisher_destroy(publisher), "cf_publisher_destroy") < 0;
}

static int subscribe(cf_engine_t* engine, cf_topic_t* topic, uint64_t count) {
    cf_subscriber_t* subscriber = NULL;
    if (check(cf_subscriber_create(topic, &subscriber), "cf_subscriber_create") < 0) return 1;
    uint64_t expected = 0, out_of_order = 0, polls = 0;
    cf_hlc_t last = {0, 0, 0};
    while (expected < count) {
        cf_message_t messages[32];
        /* Spins, then pauses between empty polls; wakes up every 100 ms with nothing to do housekeeping. */
        const int n = cf_subscriber_poll_wait(subscriber, messages, 32, 100000000u, CF_IDLE_SPIN_THEN_PAUSE);
        if (n == CF_ETIMEDOUT) {
            if (check(cf_engine_maintain(engine, NULL), "cf_engine_maintain") < 0) return 1;
            continue;
        }
        if (check(n, "cf_subscriber_poll_wait") < 0) return 1;
        for (int i = 0; i < n; ++i) {
            uint64_t value;
            memcpy(&value, messages[i].data, sizeof value);
            int order = 0;
            if (check(cf_hlc_compare(&last, &messages[i].stamp, &order), "cf_hlc_compare") < 0) return 1;
            if (value != expected || order >= 0) ++out_of_order;
            last = messages[i].stamp;
            ++expected;
        }
        if ((++polls & 0xfffff) == 0 && check(cf_engine_maintain(engine, NULL), "cf_engine_maintain") < 0) return 1;
    }
    printf("received %llu messages, %llu out of order\n", (unsigned long long)expected,
           (unsigned long long)out_of_order);
    return check(cf_subscriber_destroy(subscriber), "cf_subscriber_destroy") < 0 || out_of_order != 0;
}

int main(int argc, char** argv) {
    if (argc != 4 || (strcmp(argv[1], "publish") != 0 && strcmp(argv[1], "subscribe") != 0)) {
        fprintf(stderr, "usage: %s publish|subscribe NAME COUNT\n", argv[0]);
        return 2;
    }
    char* end = NULL;
    const unsigned long long count = strtoull(argv[3], &end, 10);
    if (end == argv[3] || *end != '\0') {
        fprintf(stderr, "pubsub_example: COUNT must be a number, not '%s'\n", argv[3]);
        return 2;
    }

    cf_engine_config_t engine_config;
    cf_engine_config_init(&engine_config);
    engine_config.pool_bytes_per_class = 64 * 1024;   /* this example does not use the pool */
    cf_engine_t* engine = NULL;
    if (check(cf_engine_create(&engine_config, &engine), "cf_engine_create") < 0) return 1;

    cf_topic_config_t topic_config;
    cf_topic_config_init(&topic_config);
    topic_config.name = argv[2];
    topic_config.max_message_bytes = 64;
    topic_config.depth = 1024;
    topic_config.shared = 1;   /* in /dev/shm/chronofabric-<uid>, mode 0600: other processes of this user open it */
    cf_topic_t* topic = NULL;
    if (check(cf_topic_create(engine, &topic_config, &topic), "cf_topic_create") < 0) return 1;

    const int failed = strcmp(argv[1], "publish") == 0 ? publish(topic, count) : subscribe(engine, topic, count);
    /* The subscriber removes the name. */
    if (check(cf_topic_destroy(topic, strcmp(argv[1], "subscribe") == 0), "cf_topic_destroy") < 0) return 1;
    if (check(cf_engine_destroy(engine), "cf_engine_destroy") < 0) return 1;
    return failed;
}
