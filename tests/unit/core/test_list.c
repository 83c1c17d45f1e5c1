/* Tests for src/core/list.h, the intrusive lists every stream and endpoint
 * list is made of (the flush list, the resume list, the chat's pending and
 * close queues): insert, unlink at the head, the tail and in the middle,
 * unlink of an unlinked link, move_all, and a long random sequence of
 * inserts and unlinks checked against a plain array. Unlinking reads and
 * writes only the link and its two neighbours, which is what makes a mass
 * disconnect linear; the random test checks that the rest of the list is
 * intact after every unlink. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "core/list.h"

typedef struct item_s {
    int value;
    tt_link_t link;
} item_t;

/* Walks list forwards and backwards, comparing with want[0..n). */
static void assert_list_is(tt_link_t *list, item_t **want, size_t n) {
    size_t i = 0;
    for (tt_link_t *l = list->next; l != list; l = l->next) {
        assert_true(i < n);
        assert_ptr_equal(tt_container_of(l, item_t, link), want[i]);
        assert_ptr_equal(l->next->prev, l);
        i++;
    }
    assert_int_equal(i, n);
    for (tt_link_t *l = list->prev; l != list; l = l->prev)
        assert_ptr_equal(tt_container_of(l, item_t, link), want[--i]);
    assert_int_equal(i, 0);
    assert_int_equal(tt_list_is_empty(list), n == 0);
}

static void test_empty_list(void **state) {
    (void)state;
    tt_link_t list;
    tt_list_init(&list);
    assert_true(tt_list_is_empty(&list));
    assert_null(tt_list_first(&list));
    item_t a = {0};
    assert_false(tt_link_is_linked(&a.link));
    tt_link_unlink(&a.link); /* on no list: a no-op */
    assert_false(tt_link_is_linked(&a.link));
    assert_true(tt_list_is_empty(&list));
}

static void test_unlink_head_middle_tail(void **state) {
    (void)state;
    tt_link_t list;
    tt_list_init(&list);
    item_t it[5] = {{.value = 0}, {.value = 1}, {.value = 2}, {.value = 3}, {.value = 4}};
    for (int i = 0; i < 5; i++)
        tt_list_insert_tail(&list, &it[i].link);
    assert_ptr_equal(tt_container_of(tt_list_first(&list), item_t, link), &it[0]);

    tt_link_unlink(&it[2].link); /* middle */
    assert_false(tt_link_is_linked(&it[2].link));
    assert_list_is(&list, (item_t *[]){&it[0], &it[1], &it[3], &it[4]}, 4);
    tt_link_unlink(&it[0].link); /* head */
    assert_list_is(&list, (item_t *[]){&it[1], &it[3], &it[4]}, 3);
    tt_link_unlink(&it[4].link); /* tail */
    assert_list_is(&list, (item_t *[]){&it[1], &it[3]}, 2);
    tt_link_unlink(&it[4].link); /* twice: a no-op */
    assert_list_is(&list, (item_t *[]){&it[1], &it[3]}, 2);

    tt_list_insert_tail(&list, &it[2].link); /* an unlinked link can be linked again */
    assert_list_is(&list, (item_t *[]){&it[1], &it[3], &it[2]}, 3);
    tt_link_unlink(&it[1].link);
    tt_link_unlink(&it[3].link);
    tt_link_unlink(&it[2].link);
    assert_list_is(&list, NULL, 0);
}

static void test_move_all(void **state) {
    (void)state;
    tt_link_t a, b;
    tt_list_init(&a);
    tt_list_init(&b);
    item_t it[4] = {{.value = 0}, {.value = 1}, {.value = 2}, {.value = 3}};
    tt_list_move_all(&a, &b); /* empty into empty */
    assert_list_is(&a, NULL, 0);
    tt_list_insert_tail(&a, &it[0].link);
    tt_list_insert_tail(&b, &it[1].link);
    tt_list_insert_tail(&b, &it[2].link);
    tt_list_move_all(&a, &b);
    assert_list_is(&a, (item_t *[]){&it[0], &it[1], &it[2]}, 3);
    assert_list_is(&b, NULL, 0);
    /* The moved links unlink from their new list. */
    tt_link_unlink(&it[1].link);
    assert_list_is(&a, (item_t *[]){&it[0], &it[2]}, 2);
    /* Moving into an empty list; then the source is reusable. */
    tt_list_move_all(&b, &a);
    assert_list_is(&b, (item_t *[]){&it[0], &it[2]}, 2);
    assert_list_is(&a, NULL, 0);
    tt_list_insert_tail(&a, &it[3].link);
    assert_list_is(&a, (item_t *[]){&it[3]}, 1);
}

/* 4,000 random steps over 200 items, against an array in list order. */
static void test_random_against_array(void **state) {
    (void)state;
    enum { N = 200, STEPS = 4000 };
    item_t *items = calloc(N, sizeof(*items));
    item_t **order = calloc(N, sizeof(*order));
    size_t n = 0;
    tt_link_t list;
    tt_list_init(&list);
    srand(7);
    for (int step = 0; step < STEPS; step++) {
        item_t *it = &items[rand() % N];
        if (tt_link_is_linked(&it->link)) {
            tt_link_unlink(&it->link);
            size_t i = 0;
            while (order[i] != it)
                i++;
            for (; i + 1 < n; i++)
                order[i] = order[i + 1];
            n--;
        } else {
            tt_list_insert_tail(&list, &it->link);
            order[n++] = it;
        }
        assert_list_is(&list, order, n);
    }
    free(order);
    free(items);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_list),
        cmocka_unit_test(test_unlink_head_middle_tail),
        cmocka_unit_test(test_move_all),
        cmocka_unit_test(test_random_against_array),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
