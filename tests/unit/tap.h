/* tap.h: runs a Check suite and reports every test case as a TAP line on
 * stdout, so automake's tap-driver counts each one. */
#ifndef LB_TEST_TAP_H
#define LB_TEST_TAP_H

#include <check.h>
#include <stdlib.h>

static inline int lb_run_suite_tap(Suite *suite)
{
    SRunner *runner = srunner_create(suite);
    srunner_set_tap(runner, "-");
    srunner_run_all(runner, CK_SILENT);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

#endif
