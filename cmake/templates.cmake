# Included from the top-level CMakeLists: a custom command is only visible to targets of its own directory.
# Embed the device templates into the library: NVRTC gets them as in-memory headers,
# so nothing depends on install paths at run time.
file(GLOB FLASHJIT_TEMPLATE_FILES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/templates/flashjit/*.cuh)
set(FLASHJIT_EMBEDDED_CPP ${PROJECT_BINARY_DIR}/embedded_templates.cpp)
add_custom_command(
  OUTPUT ${FLASHJIT_EMBEDDED_CPP}
  COMMAND ${CMAKE_COMMAND} -DOUT=${FLASHJIT_EMBEDDED_CPP} -DROOT=${PROJECT_SOURCE_DIR}/templates
          -P ${PROJECT_SOURCE_DIR}/cmake/embed_templates.cmake
  DEPENDS ${FLASHJIT_TEMPLATE_FILES} ${PROJECT_SOURCE_DIR}/cmake/embed_templates.cmake
  COMMENT "Embedding device templates")
target_sources(flashjit PRIVATE ${FLASHJIT_EMBEDDED_CPP})
