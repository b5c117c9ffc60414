/* unit_jsonw — the JSON emitter: exact 64-bit integers, round-tripping
 * doubles, escaping, arrays, and that its text reads back with the strict
 * reader. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lsw_json.h"
#include "lsw_jsonw.h"
#include "lsw_test.h"

int main(void)
{
    lsw_jw *w = lsw_jw_create();
    lsw_jw_node *r = lsw_jw_root(w);
    lsw_jw_u64(w, r, "big", UINT64_MAX);
    lsw_jw_u64(w, r, "p53", (1ULL << 53) + 1);
    lsw_jw_i64(w, r, "neg", INT64_MIN);
    lsw_jw_f64(w, r, "third", 1.0 / 3.0);
    lsw_jw_f64(w, r, "tenth", 0.1);
    lsw_jw_f64(w, r, "nan", NAN);
    lsw_jw_str(w, r, "s", "a\"b\\c\n\x01");
    lsw_jw_hex64(w, r, "h", 0x0123456789abcdefULL);
    lsw_jw_hex32(w, r, "c", 0xabcU);
    lsw_jw_bool(w, r, "t", 1);
    lsw_jw_node *a = lsw_jw_arr(w, r, "list");
    for (int i = 0; i < 3; i++)
        lsw_jw_u64(w, a, NULL, (uint64_t)i);
    lsw_jw_node *o = lsw_jw_obj(w, a, NULL);
    lsw_jw_str(w, o, "k", "v");
    char *text = NULL;
    size_t len = 0;
    CHECK(lsw_jw_print(w, &text, &len) == 0, "print");
    CHECK(text && len > 0 && text[len - 1] == '\n', "ends with a newline");
    lsw_json_doc *doc = NULL;
    char why[200];
    CHECK(text && lsw_json_parse(text, len, &doc, why, sizeof why) == 0, "strict reader accepts: %s", why);
    const lsw_json *root = lsw_json_root(doc);
    uint64_t u = 0;
    int64_t s = 0;
    double d = 0;
    CHECK(lsw_json_u64(lsw_json_get(root, "big"), &u) == 0 && u == UINT64_MAX, "2^64-1 exact");
    CHECK(lsw_json_u64(lsw_json_get(root, "p53"), &u) == 0 && u == (1ULL << 53) + 1, "2^53+1 exact");
    CHECK(lsw_json_i64(lsw_json_get(root, "neg"), &s) == 0 && s == INT64_MIN, "INT64_MIN exact");
    CHECK(lsw_json_f64(lsw_json_get(root, "third"), &d) == 0 && d == 1.0 / 3.0, "1/3 round-trips");
    CHECK(strstr(text, "0.1") && lsw_json_f64(lsw_json_get(root, "tenth"), &d) == 0 && d == 0.1, "0.1 is short");
    CHECK(lsw_json_type_of(lsw_json_get(root, "nan")) == LSW_JSON_NULL, "NaN is null");
    CHECK(!strcmp(lsw_json_str(lsw_json_get(root, "s"), NULL), "a\"b\\c\n\x01"), "escapes round-trip");
    CHECK(!strcmp(lsw_json_str(lsw_json_get(root, "h"), NULL), "0123456789abcdef"), "hex64");
    CHECK(!strcmp(lsw_json_str(lsw_json_get(root, "c"), NULL), "00000abc"), "hex32");
    CHECK(lsw_json_type_of(lsw_json_get(root, "t")) == LSW_JSON_TRUE, "bool");
    const lsw_json *l = lsw_json_get(root, "list");
    CHECK(lsw_json_count(l) == 4, "array of four");
    CHECK(!strcmp(lsw_json_str(lsw_json_get(lsw_json_at(l, 3), "k"), NULL), "v"), "object in array");
    lsw_json_free(doc);
    free(text);
    /* a NULL parent (what a failed add returns) is a no-op */
    lsw_jw_str(w, NULL, "x", "y");
    lsw_jw_free(w);
    lsw_jw_free(NULL);
    return LSW_TEST_END();
}
