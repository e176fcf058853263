// flashjit._C: the nanobind extension behind the `flashjit` Python package.
// Every entry point takes the spec as JSON text (the public format of docs/spec.md);
// the Python side builds that JSON from its Spec dataclass.
#pragma once

#include <nanobind/nanobind.h>

#include <string>

#include "flashjit/spec.h"

namespace flashjit::python {

namespace nb = nanobind;

// Parses, validates and caches a spec given as JSON; throws SpecError naming the bad field.
AttentionSpec parsed_spec(const std::string& spec_json);

void bind_errors(nb::module_& m);   // errors.cpp: exception classes and translation
void bind_compile(nb::module_& m);  // compile.cpp: compile, emit_cuda, emit_ir, resolve_tile, ...
void bind_forward(nb::module_& m);  // forward.cpp: forward over DLPack tensors
void bind_mask_picture(nb::module_& m);  // mask_picture.cpp: pictures of masks, dropout keep-masks

}  // namespace flashjit::python
