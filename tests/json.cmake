lsw_unit_test(unit_json unit_json.c)
lsw_unit_test(unit_jsonw unit_jsonw.c)
