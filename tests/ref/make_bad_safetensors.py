#!/usr/bin/python3
"""Write crafted safetensors inputs, one per rule of docs/input-validation.md, into OUTDIR.

Usage: make_bad_safetensors.py OUTDIR

Writes the files / folders and OUTDIR/cases.tsv, tab-separated, one case per line:
    file  expected_exit  tensor  description
  file           a file or folder name inside OUTDIR, to run `layerswap inspect OUTDIR/file`
  expected_exit  2 (must be refused as a bad input checkpoint) or 0 (valid)
  tensor         a tensor name the error message must mention; '-' if none is required;
                 'a|b' means the message must mention at least one of them
  description    the rule broken (or the edge case accepted), for humans
The first line is a header starting with '#'.

Built with the standard library only; independent of lsw_ref.py.
"""

import json
import os
import shutil
import struct
import sys


def st(header, data=b"", n=None):
    """Raw file: 8-byte LE header length (n, default len(header)), header bytes, data."""
    if isinstance(header, str):
        header = header.encode("utf-8")
    if not isinstance(header, bytes):
        header = json.dumps(header, separators=(",", ":")).encode("utf-8")
    return struct.pack("<Q", len(header) if n is None else n) + header + data


def ent(dtype, shape, b, e):
    return {"dtype": dtype, "shape": shape, "data_offsets": [b, e]}


F32x2 = b"\x00\x00\x80\x3f\x00\x00\x00\x40"     # [1.0, 2.0] as F32
OK = {"ok_tensor": ent("F32", [2], 0, 8)}


def raw_hdr(s):
    """A header given as JSON text (for things json.dumps cannot produce)."""
    return s.encode("utf-8")


def cases(outdir):
    """-> list of (name, bytes or callable, expected_exit, tensor, description)."""
    C = []

    def add(name, content, code, tensor, desc):
        C.append((name, content, code, tensor, desc))

    # --- file size and header length ------------------------------------------------------
    add("empty_file.safetensors", b"", 2, "-", "file shorter than 8 bytes (0 bytes)")
    add("too_short.safetensors", b"\x08\x00\x00", 2, "-", "file shorter than 8 bytes (3 bytes)")
    add("header_len_over_limit.safetensors", st(b"{}", n=100_000_001), 2, "-",
        "header length N = 100,000,001 > 100,000,000")
    add("header_len_u64_max.safetensors", st(b"{}", n=0xFFFFFFFFFFFFFFFF), 2, "-",
        "header length N = 2^64-1 (8 + N wraps around in 64-bit arithmetic)")
    add("header_len_past_eof.safetensors", st(OK, F32x2, n=200), 2, "-",
        "8 + N larger than the file")
    add("header_len_zero.safetensors", st(b""), 2, "-",
        "N = 0: the header holds no JSON object")
    # --- header text ------------------------------------------------------------------------
    add("header_not_utf8.safetensors",
        st(b'{"ok_\xff_tensor":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', F32x2), 2, "-",
        "header is not valid UTF-8 (byte 0xFF in a name)")
    add("header_overlong_utf8.safetensors",
        st(b'{"ok_\xc0\xaf_tensor":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', F32x2), 2, "-",
        "header is not valid UTF-8 (overlong encoding C0 AF)")
    add("header_bom.safetensors",
        st(b"\xef\xbb\xbf" + json.dumps(OK).encode(), F32x2), 2, "-",
        "header starts with a UTF-8 byte-order mark")
    add("trailing_garbage.safetensors", st(json.dumps(OK).encode() + b"x", F32x2), 2, "-",
        "non-whitespace after the JSON object ({...}x)")
    add("trailing_nul_padding.safetensors", st(json.dumps(OK).encode() + b"\x00\x00\x00", F32x2), 2, "-",
        "NUL bytes after the JSON object (NUL is not JSON whitespace)")
    add("two_objects.safetensors", st(json.dumps(OK).encode() + b"{}", F32x2), 2, "-",
        "two JSON objects in the header")
    add("header_array.safetensors", st(b"[]"), 2, "-", "header is a JSON array, not an object")
    add("header_truncated_json.safetensors", st(b'{"ok_tensor":{"dtype":"F32"', F32x2), 2, "-",
        "header is not valid JSON (truncated)")
    add("header_nan_literal.safetensors",
        st(b'{"__metadata__":{"x":"y"},"ok_tensor":{"dtype":"F32","shape":[2],"data_offsets":[0,8],'
           b'"scale":NaN}}', F32x2), 2, "-",
        "header is not valid JSON (NaN literal)")
    # --- __metadata__ ---------------------------------------------------------------------
    add("metadata_nonstring_value.safetensors",
        st(dict({"__metadata__": {"format": "pt", "version": 1}}, **OK), F32x2), 2, "-",
        "__metadata__ maps a key to a number, not a string")
    add("metadata_not_object.safetensors",
        st(dict({"__metadata__": "pt"}, **OK), F32x2), 2, "-",
        "__metadata__ is a string, not an object")
    # --- tensor names -----------------------------------------------------------------------
    add("empty_name.safetensors", st({"": ent("F32", [2], 0, 8)}, F32x2), 2, "-",
        "empty tensor name")
    add("name_with_nul.safetensors",
        st(raw_hdr('{"bad\\u0000name":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'), F32x2), 2, "-",
        "tensor name contains NUL (\\u0000)")
    add("duplicate_name.safetensors",
        st(raw_hdr('{"dup_tensor":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
                   '"dup_tensor":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}'), F32x2 * 2),
        2, "dup_tensor", "the same tensor name appears twice")
    add("valid_names_differ_by_case.safetensors",
        st({"Case_tensor": ent("F32", [2], 0, 8), "case_tensor": ent("F32", [2], 8, 16)}, F32x2 * 2),
        0, "-", "VALID: names differing only by case are two tensors (case-sensitive)")
    # --- dtype ------------------------------------------------------------------------------
    add("dtype_unknown.safetensors", st({"bad_tensor": ent("BF17", [4], 0, 8)}, F32x2), 2, "bad_tensor",
        "unknown dtype BF17")
    add("dtype_lowercase.safetensors", st({"bad_tensor": ent("bf16", [4], 0, 8)}, F32x2), 2, "bad_tensor",
        "dtype bf16 in lower case (dtypes are upper case)")
    add("dtype_not_string.safetensors", st({"bad_tensor": ent(16, [4], 0, 8)}, F32x2), 2, "bad_tensor",
        "dtype is a number")
    # --- shape ------------------------------------------------------------------------------
    add("shape_negative.safetensors", st({"bad_tensor": ent("F32", [-2], 0, 8)}, F32x2), 2, "bad_tensor",
        "shape with a negative number")
    add("shape_float.safetensors",
        st(raw_hdr('{"bad_tensor":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}}'), F32x2),
        2, "bad_tensor", "shape with a float (2.0)")
    add("shape_bool.safetensors",
        st(raw_hdr('{"bad_tensor":{"dtype":"F32","shape":[true,2],"data_offsets":[0,8]}}'), F32x2),
        2, "bad_tensor", "shape with a boolean (true)")
    add("shape_not_list.safetensors", st({"bad_tensor": ent("F32", 2, 0, 8)}, F32x2), 2, "bad_tensor",
        "shape is a number, not a list")
    add("shape_overflow.safetensors",
        st({"bad_tensor": ent("F16", [4294967296, 4294967296, 2], 0, 8)}, F32x2), 2, "bad_tensor",
        "shape product x element size overflows 64 bits ([2^32, 2^32, 2] F16 = 2^66 bytes)")
    add("shape_bytes_overflow.safetensors",
        st({"bad_tensor": ent("F32", [4611686018427387904], 0, 8)}, F32x2), 2, "bad_tensor",
        "product 2^62 fits, but times 4 bytes = 2^64 does not fit in 64 bits")
    # Literal reading of §7: the product (0) times the element size fits in 64 bits.
    # An implementation that multiplies dims with an overflow check before seeing the 0
    # rejects it; SPEC says the product is what must fit.
    add("valid_zero_dim_with_huge_dims.safetensors",
        st({"zero_tensor": ent("F32", [4294967296, 4294967296, 4294967296, 0], 0, 0),
            "ok_tensor": ent("F32", [2], 0, 8)}, F32x2),
        0, "-", "VALID (literal SPEC): shape [2^32,2^32,2^32,0] has product 0, which fits")
    # --- data_offsets -----------------------------------------------------------------------
    add("offsets_three.safetensors",
        st({"bad_tensor": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8, 8]}}, F32x2),
        2, "bad_tensor", "data_offsets with 3 numbers")
    add("offsets_one.safetensors",
        st({"bad_tensor": {"dtype": "F32", "shape": [2], "data_offsets": [8]}}, F32x2),
        2, "bad_tensor", "data_offsets with 1 number")
    add("offsets_float.safetensors",
        st(raw_hdr('{"bad_tensor":{"dtype":"F32","shape":[2],"data_offsets":[0,8.0]}}'), F32x2),
        2, "bad_tensor", "data_offsets with a float (8.0)")
    add("offsets_negative.safetensors",
        st({"bad_tensor": ent("F32", [2], -8, 0)}, F32x2), 2, "bad_tensor",
        "data_offsets with a negative begin")
    add("offsets_begin_gt_end.safetensors",
        st({"bad_tensor": ent("F32", [0], 8, 0), "ok_tensor": ent("F32", [2], 0, 8)}, F32x2),
        2, "bad_tensor", "data_offsets begin > end ([8, 0])")
    add("offsets_size_mismatch.safetensors",
        st({"bad_tensor": ent("F32", [2], 0, 12)}, F32x2 + b"\x00" * 4), 2, "bad_tensor",
        "end - begin (12) differs from the byte size of F32 [2] (8)")
    add("offsets_overlap.safetensors",
        st({"tensor_a": ent("F32", [2], 0, 8), "tensor_b": ent("F32", [2], 4, 12)}, F32x2 + b"\x00" * 4),
        2, "tensor_b|tensor_a", "two tensors overlap ([0,8] and [4,12])")
    add("offsets_hole.safetensors",
        st({"tensor_a": ent("F32", [2], 0, 8), "tensor_b": ent("F32", [2], 12, 20)}, F32x2 + b"\x00" * 12),
        2, "tensor_b|tensor_a", "hole between two tensors (bytes 8..12 unused)")
    add("data_not_at_zero.safetensors",
        st({"bad_tensor": ent("F32", [2], 4, 12)}, b"\x00" * 4 + F32x2), 2, "bad_tensor",
        "data area does not start at 0 (first tensor at 4)")
    add("extra_bytes_at_end.safetensors", st(OK, F32x2 + b"\x00" * 4), 2, "-",
        "data area shorter than the file (4 extra bytes at the end)")
    add("offsets_beyond_file.safetensors",
        st({"bad_tensor": ent("F32", [2], 0, 8)}, b"\x00" * 4), 2, "bad_tensor",
        "data_offsets reach beyond the end of the file")
    add("offsets_beyond_file_second.safetensors",
        st({"ok_tensor": ent("F32", [2], 0, 8), "bad_tensor": ent("F32", [2], 8, 16)}, F32x2 + b"\x00" * 4),
        2, "bad_tensor", "the second tensor ends beyond the end of the file")
    # --- entry keys -------------------------------------------------------------------------
    for k in ("dtype", "shape", "data_offsets"):
        e = ent("F32", [2], 0, 8)
        del e[k]
        add("missing_%s.safetensors" % k, st({"bad_tensor": e}, F32x2), 2, "bad_tensor",
            "tensor entry without %r" % k)
    add("entry_not_object.safetensors", st({"bad_tensor": [0, 8]}, F32x2), 2, "bad_tensor",
        "tensor entry is a list, not an object")
    # docs/input-validation.md says what each entry must have, and nothing against other keys (the
    # "unknown keys" rule of §2 is about the merge config): read literally, an extra
    # key inside a tensor entry is accepted.
    add("valid_extra_key_in_entry.safetensors",
        st({"ok_tensor": dict(ent("F32", [2], 0, 8), extra="x")}, F32x2), 0, "-",
        "VALID (literal SPEC): unknown extra key inside a tensor entry")
    # --- valid edge cases -------------------------------------------------------------------
    add("valid_zero_size.safetensors",
        st({"empty_tensor": ent("F32", [0, 4], 0, 0), "ok_tensor": ent("F32", [2], 0, 8)}, F32x2),
        0, "-", "VALID: zero-size tensor [0, 4] next to a normal one")
    add("valid_zero_size_only.safetensors", st({"empty_tensor": ent("BF16", [0, 4], 0, 0)}), 0, "-",
        "VALID: only a zero-size tensor, no data bytes")
    add("valid_scalar.safetensors", st({"scalar_tensor": ent("F32", [], 0, 4)}, F32x2[:4]), 0, "-",
        "VALID: scalar (shape [])")
    add("valid_key_order.safetensors",
        st(raw_hdr('{"ok_tensor":{"data_offsets":[0,8],"shape":[2],"dtype":"F32"}}'), F32x2), 0, "-",
        "VALID: data_offsets before shape before dtype")
    add("valid_empty_header.safetensors", st(b"{}"), 0, "-", "VALID: empty header object, no data")
    add("valid_empty_header_padded.safetensors", st(b"{}      "), 0, "-",
        "VALID: empty header object padded with spaces to 8 bytes")
    add("valid_padded_header.safetensors", st(json.dumps(OK).encode() + b" " * 13, F32x2), 0, "-",
        "VALID: header padded with trailing spaces")
    add("valid_trailing_json_ws.safetensors", st(json.dumps(OK).encode() + b" \n\t\r ", F32x2), 0, "-",
        "VALID: header followed by JSON whitespace (space, LF, TAB, CR)")
    add("valid_unsorted_header.safetensors",
        st(raw_hdr('{"tensor_b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},'
                   '"tensor_a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
                   '"tensor_c":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}'), F32x2 * 2),
        0, "-", "VALID: tensors listed in the header in another order than their data")
    add("valid_metadata.safetensors",
        st(raw_hdr('{"ok_tensor":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
                   '"__metadata__":{"format":"pt","note":""}}'), F32x2), 0, "-",
        "VALID: __metadata__ of strings, listed after the tensor")
    add("valid_common_dtypes.safetensors", _all_dtypes(), 0, "-",
        "VALID: one tensor of each classic safetensors dtype "
        "(BOOL U8 I8 I16 U16 I32 U32 I64 U64 F16 BF16 F32 F64)")
    add("valid_bf16_matrix.safetensors",
        st({"__metadata__": {"format": "pt"}, "model.layers.0.mlp.up_proj.weight": ent("BF16", [2, 3], 0, 12)},
           bytes(range(12))), 0, "-", "VALID: a plain BF16 2x3 tensor")
    # --- pickle -----------------------------------------------------------------------------
    add("pytorch_model.bin", b"PK\x03\x04" + b"\x00" * 60, 2, "-", "pickle checkpoint (*.bin) refused")
    add("model.pt", b"\x80\x02}q\x00." + b"\x00" * 16, 2, "-", "pickle checkpoint (*.pt) refused")
    return C


def _all_dtypes():
    sizes = [("BOOL", 1), ("U8", 1), ("I8", 1), ("I16", 2), ("U16", 2), ("I32", 4), ("U32", 4),
             ("I64", 8), ("U64", 8), ("F16", 2), ("BF16", 2), ("F32", 4), ("F64", 8)]
    h, off = {}, 0
    for dt, sz in sizes:
        h["t_" + dt.lower()] = ent(dt, [3], off, off + 3 * sz)
        off += 3 * sz
    return st(h, b"\x00" * off)


def shard(tensors):
    """tensors: list of (name, nbytes) as U8 vectors -> file bytes."""
    h, off, data = {"__metadata__": {"format": "pt"}}, 0, b""
    for name, nb in tensors:
        h[name] = ent("U8", [nb], off, off + nb)
        data += bytes((off + i) & 0xFF for i in range(nb))
        off += nb
    return st(h, data)


def index(weight_map):
    return json.dumps({"metadata": {"total_size": 0}, "weight_map": weight_map}, indent=2).encode()


S1, S2 = "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"


def folder_cases(outdir):
    """-> list of (folder, {relative path: bytes}, expected_exit, tensor, description)."""
    F = []

    def add(name, files, code, tensor, desc):
        F.append((name, files, code, tensor, desc))

    good1 = shard([("alpha_tensor", 4), ("beta_tensor", 4)])
    good2 = shard([("gamma_tensor", 8)])
    wm = {"alpha_tensor": S1, "beta_tensor": S1, "gamma_tensor": S2}
    add("idx_valid", {S1: good1, S2: good2, "model.safetensors.index.json": index(wm)}, 0, "-",
        "VALID: index + two shards")
    add("folder_single_valid", {"model.safetensors": good1}, 0, "-",
        "VALID: folder with model.safetensors")
    add("idx_path_with_slash",
        {"sub/" + S1: good1, S2: good2,
         "model.safetensors.index.json": index(dict(wm, alpha_tensor="sub/" + S1, beta_tensor="sub/" + S1))},
        2, "-", "index names a shard path with '/' (the file exists there)")
    add("idx_path_dotdot",
        {S1: good1, S2: good2,
         "model.safetensors.index.json": index(dict(wm, alpha_tensor="../idx_path_dotdot/" + S1,
                                                    beta_tensor="../idx_path_dotdot/" + S1))},
        2, "-", "index names a shard path with '..' (resolving to a file of the same folder)")
    add("idx_path_absolute",
        {S1: good1, S2: good2,
         "model.safetensors.index.json": lambda d: index(dict(wm, gamma_tensor=os.path.join(d, S2)))},
        2, "-", "index names an absolute shard path (the file exists there)")
    add("idx_tensor_not_in_shard",
        {S1: good1, S2: good2,
         "model.safetensors.index.json": index(dict(wm, missing_tensor=S2))},
        2, "missing_tensor", "index lists a tensor that is not in its shard")
    add("idx_tensor_in_two_shards",
        {S1: good1, S2: shard([("gamma_tensor", 8), ("beta_tensor", 4)]),
         "model.safetensors.index.json": index(wm)},
        2, "beta_tensor", "a tensor is in two shards (index maps it to the first)")
    add("idx_missing_shard",
        {S1: good1, "model.safetensors.index.json": index(wm)},
        2, "-", "index names a shard file that does not exist")
    add("idx_bad_shard_header",
        {S1: good1, S2: st(json.dumps({"gamma_tensor": ent("U8", [8], 0, 8)}).encode() + b"x", bytes(8)),
         "model.safetensors.index.json": index(wm)},
        2, "-", "a shard's header is invalid (non-whitespace after the JSON object)")
    add("idx_not_json",
        {S1: good1, S2: good2, "model.safetensors.index.json": b'{"weight_map": {"alpha_tensor": '},
        2, "-", "index file is not valid JSON")
    add("idx_no_weight_map",
        {S1: good1, S2: good2, "model.safetensors.index.json": b'{"metadata": {}}'},
        2, "-", "index has no weight_map")
    add("folder_pickle_only", {"pytorch_model.bin": b"PK\x03\x04" + b"\x00" * 60}, 2, "-",
        "folder with only a pickle checkpoint (pytorch_model.bin)")
    add("folder_empty", {}, 2, "-", "folder with no checkpoint at all")
    return F


def main(argv):
    if len(argv) != 1 or argv[0] in ("-h", "--help"):
        print("Usage: make_bad_safetensors.py OUTDIR")
        return 0 if argv and argv[0] in ("-h", "--help") else 1
    out = os.path.abspath(argv[0])
    os.makedirs(out, exist_ok=True)
    rows = ["#file\texpected_exit\ttensor\tdescription"]
    for name, content, code, tensor, desc in cases(out):
        with open(os.path.join(out, name), "wb") as f:
            f.write(content)
        rows.append("%s\t%d\t%s\t%s" % (name, code, tensor, desc))
    for name, files, code, tensor, desc in folder_cases(out):
        d = os.path.join(out, name)
        if os.path.isdir(d):
            shutil.rmtree(d)
        os.makedirs(d)
        for rel, content in files.items():
            p = os.path.join(d, rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "wb") as f:
                f.write(content(d) if callable(content) else content)
        rows.append("%s\t%d\t%s\t%s" % (name, code, tensor, desc))
    with open(os.path.join(out, "cases.tsv"), "w") as f:
        f.write("\n".join(rows) + "\n")
    print("wrote %d cases to %s" % (len(rows) - 1, os.path.join(out, "cases.tsv")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
