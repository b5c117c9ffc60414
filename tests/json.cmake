lsw_unit_test(unit_json unit_json.c)
