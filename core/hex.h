/* hex.h: the value of one hexadecimal digit, for the three readers of
 * peer bytes that decode hex (JSON \u escapes, form %XX escapes, chunk
 * sizes). */
#ifndef LB_HEX_H
#define LB_HEX_H

/* 0 to 15, or -1 when c is no hex digit (either case). */
static inline int lb_hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

#endif
