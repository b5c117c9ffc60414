/* unit_yaml — the bounded YAML tree (engine/lsw_yaml.h), mergekit's gradient
 * rule (lsw_setting_eval) and the config.json restack (engine/lsw_hfconfig.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lsw_hfconfig.h"
#include "lsw_mkcfg.h"
#include "lsw_test.h"
#include "lsw_yaml.h"

static int parse(const char *s, char *why, size_t n)
{
    lsw_yaml_doc *d = NULL;
    int rc = lsw_yaml_parse(s, strlen(s), &d, why, n);
    lsw_yaml_free(d);
    return rc;
}

static void tree(void)
{
    char why[300];
    lsw_yaml_doc *d = NULL;
    const char *ok = "a: &x [1, 2]\nb: *x\nc: {d: 'q', e: \"\\0\"}\n";
    CHECK(lsw_yaml_parse(ok, strlen(ok), &d, why, sizeof why) == 0, "valid document: %s", why);
    const lsw_ynode *r = lsw_yaml_root(d);
    CHECK(lsw_ynode_kind(r) == LSW_Y_MAP && lsw_ynode_count(r) == 3, "three keys");
    CHECK(lsw_ynode_count(lsw_ynode_get(r, "b")) == 2, "alias shares the anchored list");
    CHECK(lsw_ynode_line(lsw_ynode_get(r, "c")) == 3, "line of c");
    CHECK(!lsw_ynode_plain(lsw_ynode_get(lsw_ynode_get(r, "c"), "d")), "quoted scalar is not plain");
    CHECK(lsw_ynode_has_nul(lsw_ynode_get(lsw_ynode_get(r, "c"), "e")), "\\0 escape seen");
    lsw_yaml_free(d);
    /* billion laughs: 10 levels of 10 aliases */
    char big[4096] = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
    for (int i = 1; i < 10; i++) {
        char line[200];
        char p = (char)('a' + i - 1), q = (char)('a' + i);
        snprintf(line, sizeof line, "%c: &%c [*%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c]\n", q, q, p, p, p, p, p,
                 p, p, p, p, p);
        strcat(big, line);
    }
    CHECK(parse(big, why, sizeof why) != 0 && strstr(why, "expands to more than"), "billion laughs refused: %s", why);
    char deep[200] = "";
    for (int i = 0; i < 40; i++)
        strcat(deep, "[");
    CHECK(parse(deep, why, sizeof why) != 0 && strstr(why, "nested more than"), "depth refused: %s", why);
    CHECK(parse("a: 1\nb: 2\na: 3\n", why, sizeof why) != 0 && strstr(why, "duplicate key \"a\"") &&
          strstr(why, "line 3"), "duplicate key: %s", why);
    CHECK(parse("a: !!python/object x\n", why, sizeof why) != 0 && strstr(why, "tags"), "tag refused: %s", why);
    CHECK(parse("a: 1\n---\nb: 2\n", why, sizeof why) != 0 && strstr(why, "more than one"), "two documents: %s", why);
    CHECK(parse("a: [1, 2\n", why, sizeof why) != 0 && strstr(why, "line "), "syntax error with line: %s", why);
    CHECK(parse("a: *nope\n", why, sizeof why) != 0 && strstr(why, "names no anchor"), "unknown alias: %s", why);
    CHECK(parse("? [1, 2]\n: 3\n", why, sizeof why) != 0 && strstr(why, "mapping key"), "complex key: %s", why);
    CHECK(parse("", why, sizeof why) != 0, "empty document refused");
}

static void gradients(void)
{
    /* mergekit: x = t (n - 1), i = floor(x), f = x - i, (1 - f) g[i] + f g[min(i + 1, n - 1)] */
    double g[5] = {0, 0.5, 0.3, 0.7, 1}, v;
    lsw_cond c = {NULL, 1, 5, g};
    lsw_setting s = {1, &c};
    CHECK(lsw_setting_eval(&s, "x", 0.0, &v) && v == 0.0, "t=0");
    CHECK(lsw_setting_eval(&s, "x", 1.0, &v) && v == 1.0, "t=1");
    double t = 1.0 / 7.0, x = t * 4.0, f = x - 0.0;
    CHECK(lsw_setting_eval(&s, "x", t, &v) && v == (1.0 - f) * 0.0 + f * 0.5, "t=1/7: %.17g", v);
    t = 5.0 / 7.0, x = t * 4.0, f = x - 2.0;
    CHECK(lsw_setting_eval(&s, "x", t, &v) && v == (1.0 - f) * 0.3 + f * 0.7, "t=5/7: %.17g", v);
    double one = 0.25;
    lsw_cond cc[2] = {{"mlp", 0, 1, &one}, {NULL, 1, 5, g}};
    lsw_setting s2 = {2, cc};
    CHECK(lsw_setting_eval(&s2, "model.layers.1.mlp.up_proj.weight", 0.5, &v) && v == 0.25, "filter matches");
    CHECK(lsw_setting_eval(&s2, "model.layers.1.self_attn.q_proj.weight", 0.5, &v) && v == 0.3, "default entry");
    lsw_setting s3 = {1, cc};
    CHECK(!lsw_setting_eval(&s3, "lm_head.weight", 0.0, &v), "no condition matches");
}

static void restack(void)
{
    const char *cfg = "{\"a\": 1, \"num_hidden_layers\": 4, \"layer_types\": [\"s\", \"f\", \"s\", \"f\"],\n"
                      " \"text_config\": {\"num_hidden_layers\": 4, \"x\": [0, 1, 2, 3]}, \"y\": [9, 9]}";
    int map[6] = {0, 1, 2, 1, 2, 3};
    char *out = NULL;
    size_t len = 0;
    CHECK(lsw_hfconfig_rewrite(cfg, strlen(cfg), map, 6, "config.json", &out, &len) == 0, "rewrite");
    const char *want = "{\"a\": 1, \"num_hidden_layers\": 6, \"layer_types\": [\"s\", \"f\", \"s\", \"f\", \"s\", \"f\"],\n"
                       " \"text_config\": {\"num_hidden_layers\": 6, \"x\": [0, 1, 2, 1, 2, 3]}, \"y\": [9, 9]}";
    CHECK(out && len == strlen(want) && memcmp(out, want, len) == 0, "restacked: %.*s", (int)len, out ? out : "");
    free(out);
    int bad[2] = {0, 7};
    out = NULL;
    CHECK(lsw_hfconfig_rewrite(cfg, strlen(cfg), bad, 2, "config.json", &out, &len) == LSW_E_INPUT, "short list");
    free(out);
}

int main(void)
{
    tree();
    gradients();
    restack();
    return LSW_TEST_END();
}
