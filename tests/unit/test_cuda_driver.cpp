// The dlopen'ed driver: without a GPU it must report why and refuse GPU work with a
// clear error; with one it must describe the device.
#include <string>

#include "catch.hpp"
#include "flashjit/cuda_driver.h"
#include "flashjit/error.h"

TEST_CASE("CudaDriver reports availability and refuses GPU work without a GPU", "[driver]") {
  flashjit::CudaDriver& drv = flashjit::CudaDriver::get();
  CHECK(&drv == &flashjit::CudaDriver::get());  // one process-wide instance

  // check() never throws on success, and names the error (and the caller) otherwise.
  CHECK_NOTHROW(drv.check(CUDA_SUCCESS, "nothing"));
  try {
    drv.check(CUDA_ERROR_OUT_OF_MEMORY, "cuMemAlloc(q)");
    FAIL("check() accepted an error");
  } catch (const flashjit::CudaError& e) {
    const std::string msg = e.what();
    CHECK(msg.find("cuMemAlloc(q): CUDA_ERROR_OUT_OF_MEMORY (") == 0);
  }

  if (!drv.available()) {
    const std::string reason = drv.unavailable_reason();
    INFO("reason: " << reason);
    CHECK_FALSE(reason.empty());
    CHECK((reason.find("libcuda") != std::string::npos || reason.find("cuInit") != std::string::npos ||
           reason.find("no CUDA device") != std::string::npos));
    try {
      drv.require("forward");
      FAIL("require() did not throw without a GPU");
    } catch (const flashjit::CudaError& e) {
      const std::string msg = e.what();
      CHECK(msg.find("forward needs a GPU") != std::string::npos);
      CHECK(msg.find(reason) != std::string::npos);
    }
    CHECK_THROWS_AS(drv.current_device(), flashjit::CudaError);
  } else {
    CHECK(drv.unavailable_reason().empty());
    CHECK_NOTHROW(drv.require("forward"));
    CHECK(drv.driver_version() > 0);
    const CUdevice dev = drv.current_device();
    const std::string arch = drv.device_arch(dev);
    INFO("device " << drv.device_name(dev) << " arch " << arch);
    CHECK(arch.rfind("sm_", 0) == 0);
    CHECK_FALSE(drv.device_name(dev).empty());
    CHECK(drv.device_attribute(dev, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT) > 0);
    CHECK(drv.current_device() == dev);  // the context set up on the first call stays current
    // Every resolved entry point is usable: a tiny allocation round trip.
    CUdeviceptr p = 0;
    drv.check(drv.cuMemAlloc(&p, 64), "cuMemAlloc");
    drv.check(drv.cuMemsetD8(p, 0x5a, 64), "cuMemsetD8");
    unsigned char host[64] = {};
    drv.check(drv.cuMemcpyDtoH(host, p, 64), "cuMemcpyDtoH");
    drv.check(drv.cuMemFree(p), "cuMemFree");
    CHECK(host[0] == 0x5a);
    CHECK(host[63] == 0x5a);
  }
}
