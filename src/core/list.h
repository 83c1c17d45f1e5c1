/* Intrusive doubly linked lists (the shape of libuv's queue.h and h2o's
 * h2o_linklist_t): a tt_link_t lives inside the object, so putting an
 * object on a list allocates nothing and taking it off is O(1) wherever it
 * is. A list is a sentinel link whose next/prev point at itself when empty;
 * a link that is on no list has next == NULL. */
#ifndef TT_CORE_LIST_H
#define TT_CORE_LIST_H

#include <stdbool.h>
#include <stddef.h>

typedef struct tt_link_s {
    struct tt_link_s *prev, *next;
} tt_link_t;

/* The object that holds link as its member `field`. */
#define tt_container_of(link, type, field) ((type *)(void *)((char *)(link)-offsetof(type, field)))

static inline void tt_list_init(tt_link_t *list) {
    list->prev = list->next = list;
}

static inline bool tt_list_is_empty(const tt_link_t *list) {
    return list->next == list;
}

/* True if link is on some list (links start zeroed: off every list). */
static inline bool tt_link_is_linked(const tt_link_t *link) {
    return link->next != NULL;
}

static inline void tt_list_insert_tail(tt_link_t *list, tt_link_t *link) {
    link->prev = list->prev;
    link->next = list;
    list->prev->next = link;
    list->prev = link;
}

/* Takes link off its list; a no-op for a link on none. */
static inline void tt_link_unlink(tt_link_t *link) {
    if (link->next == NULL)
        return;
    link->prev->next = link->next;
    link->next->prev = link->prev;
    link->prev = link->next = NULL;
}

/* The first link of list, or NULL when it is empty. */
static inline tt_link_t *tt_list_first(const tt_link_t *list) {
    return list->next == list ? NULL : list->next;
}

/* Moves every link of from to the end of to, leaving from empty. */
static inline void tt_list_move_all(tt_link_t *to, tt_link_t *from) {
    if (tt_list_is_empty(from))
        return;
    from->next->prev = to->prev;
    to->prev->next = from->next;
    from->prev->next = to;
    to->prev = from->prev;
    tt_list_init(from);
}

#endif
