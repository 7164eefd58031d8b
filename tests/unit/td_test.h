/*
 * td_test.h - the tiny unit-test harness: one executable per module, one ctest each.
 *
 *   static void test_foo(void) { TD_ASSERT_EQ_INT(1 + 1, 2); }
 *   TEST_LIST = { {"foo", test_foo}, {NULL, NULL} };
 *
 * Each test runs in order; a failed assertion prints both sides with file:line and
 * marks the test failed (the rest of that test is skipped). main() prints one line
 * per test and a closing "N passed, N failed" line; exit status is non-zero on
 * any failure. Pass a test name as argv[1] to run only that test.
 */
#ifndef TD_TEST_H
#define TD_TEST_H

#include <inttypes.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>

struct td_test {
    const char *name;
    void (*fn)(void);
};

extern const struct td_test td_test_list[];
#define TEST_LIST const struct td_test td_test_list[]

static jmp_buf td__test_jmp;
static int td__test_failed;

#define TD__FAIL(...)                                                                              \
    do {                                                                                           \
        fprintf(stderr, "  %s:%d: ", __FILE__, __LINE__);                                          \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fputc('\n', stderr);                                                                       \
        td__test_failed = 1;                                                                       \
        longjmp(td__test_jmp, 1);                                                                  \
    } while (0)

#define TD_CHECK(cond)                                                                             \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            TD__FAIL("check failed: %s", #cond);                                                   \
        }                                                                                          \
    } while (0)

#define TD_ASSERT_EQ_INT(a, b)                                                                     \
    do {                                                                                           \
        long long td__a = (long long)(a), td__b = (long long)(b);                                  \
        if (td__a != td__b) {                                                                      \
            TD__FAIL("%s == %s: %lld != %lld", #a, #b, td__a, td__b);                              \
        }                                                                                          \
    } while (0)

#define TD_ASSERT_EQ_U64(a, b)                                                                     \
    do {                                                                                           \
        unsigned long long td__a = (unsigned long long)(a), td__b = (unsigned long long)(b);       \
        if (td__a != td__b) {                                                                      \
            TD__FAIL("%s == %s: %llu != %llu", #a, #b, td__a, td__b);                              \
        }                                                                                          \
    } while (0)

#define TD_ASSERT_EQ_STR(a, b)                                                                     \
    do {                                                                                           \
        const char *td__a = (a), *td__b = (b);                                                     \
        if (!td__a || !td__b || strcmp(td__a, td__b) != 0) {                                       \
            TD__FAIL("%s == %s:\n    got      \"%s\"\n    expected \"%s\"", #a, #b,                \
                     td__a ? td__a : "(null)", td__b ? td__b : "(null)");                          \
        }                                                                                          \
    } while (0)

#define TD_ASSERT_EQ_MEM(a, b, n)                                                                  \
    do {                                                                                           \
        if (memcmp((a), (b), (n)) != 0) {                                                          \
            TD__FAIL("%s == %s: %zu bytes differ", #a, #b, (size_t)(n));                           \
        }                                                                                          \
    } while (0)

#define TD_ASSERT_OK(expr)                                                                         \
    do {                                                                                           \
        td_err td__e;                                                                              \
        td_err_init(&td__e);                                                                       \
        (void)td__e;                                                                               \
        int td__s = (int)(expr);                                                                   \
        if (td__s != 0) {                                                                          \
            TD__FAIL("%s returned status %d", #expr, td__s);                                       \
        }                                                                                          \
    } while (0)

int main(int argc, char **argv)
{
    /* volatile: they live across setjmp/longjmp */
    volatile int passed = 0, failed = 0;
    for (const struct td_test *volatile t = td_test_list; t->name; t++) {
        if (argc > 1 && strcmp(argv[1], t->name) != 0) {
            continue;
        }
        td__test_failed = 0;
        if (setjmp(td__test_jmp) == 0) {
            t->fn();
        }
        printf("%s %s\n", td__test_failed ? "FAIL" : "ok  ", t->name);
        fflush(stdout);
        if (td__test_failed) {
            failed++;
        } else {
            passed++;
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

#endif
