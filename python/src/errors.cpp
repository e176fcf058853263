// C++ exceptions -> Python exceptions. Each flashjit error gets its own Python class so
// callers can catch precisely, and each derives from the builtin a user would expect:
//   SpecError, ArgumentError, LegalityError -> ValueError (the call's inputs are wrong)
//   CompileError, CudaError                 -> RuntimeError (the toolchain / driver failed)
// SpecError carries .field (JSON path, e.g. "mask.kind"); ArgumentError carries .param.
#include <Python.h>

#include <cstring>

#include "bindings.h"
#include "flashjit/error.h"

namespace flashjit::python {
namespace {

PyObject* g_spec_error = nullptr;
PyObject* g_argument_error = nullptr;
PyObject* g_legality_error = nullptr;
PyObject* g_compile_error = nullptr;
PyObject* g_cuda_error = nullptr;

PyObject* new_exception_type(nb::module_& m, const char* name, PyObject* base, const char* doc) {
  const std::string qualified = std::string("flashjit.") + name;
  PyObject* type = PyErr_NewExceptionWithDoc(qualified.c_str(), doc, base, nullptr);
  if (!type) throw nb::python_error();
  m.attr(name) = nb::handle(type);  // the module keeps a reference; we keep ours forever
  return type;
}

// A Python str of a message. flashjit's messages are valid UTF-8 (error.h: printable), but
// a message must never become a UnicodeDecodeError: anything else is backslash-escaped.
PyObject* to_str(const char* s, std::size_t n) {
  return PyUnicode_DecodeUTF8(s, static_cast<Py_ssize_t>(n), "backslashreplace");
}

void raise_message(PyObject* type, const char* message) {
  PyObject* text = to_str(message, std::strlen(message));
  if (!text) return;
  PyErr_SetObject(type, text);
  Py_DECREF(text);
}

// Raises `type(message)` with one extra attribute (field / param) set on the instance.
void raise_with_attr(PyObject* type, const char* message, const char* attr, const std::string& value) {
  PyObject* text = to_str(message, std::strlen(message));
  if (!text) return;
  PyObject* exc = PyObject_CallFunctionObjArgs(type, text, nullptr);
  Py_DECREF(text);
  if (!exc) return;  // the error from the call stays set
  PyObject* v = to_str(value.data(), value.size());
  if (v) {
    PyObject_SetAttrString(exc, attr, v);
    Py_DECREF(v);
  }
  PyErr_SetObject(type, exc);
  Py_DECREF(exc);
}

void translate(const std::exception_ptr& p, void*) {
  try {
    std::rethrow_exception(p);
  } catch (const SpecError& e) {
    raise_with_attr(g_spec_error, e.what(), "field", e.field());
  } catch (const ArgumentError& e) {
    raise_with_attr(g_argument_error, e.what(), "param", e.param());
  } catch (const LegalityError& e) {
    raise_message(g_legality_error, e.what());
  } catch (const CompileError& e) {
    raise_message(g_compile_error, e.what());
  } catch (const CudaError& e) {
    raise_message(g_cuda_error, e.what());
  }
  // Anything else propagates to nanobind's default translators
  // (std::invalid_argument -> ValueError, std::runtime_error -> RuntimeError, ...).
}

}  // namespace

void bind_errors(nb::module_& m) {
  g_spec_error = new_exception_type(
      m, "SpecError", PyExc_ValueError,
      "A spec field is malformed or unsupported; .field is its JSON path (e.g. 'mask.kind').");
  g_argument_error = new_exception_type(
      m, "ArgumentError", PyExc_ValueError,
      "A tensor argument (shape, stride, dtype, device, pointer) does not fit the spec; .param names it.");
  g_legality_error = new_exception_type(
      m, "LegalityError", PyExc_ValueError,
      "The generated kernel does not fit the target GPU (shared memory, registers).");
  g_compile_error = new_exception_type(m, "CompileError", PyExc_RuntimeError,
                                       "NVRTC failed; the message carries its log.");
  g_cuda_error = new_exception_type(m, "CudaError", PyExc_RuntimeError,
                                    "The CUDA driver failed or no GPU is present.");
  nb::register_exception_translator(translate);
}

}  // namespace flashjit::python
