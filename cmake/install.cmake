# `cmake --install` + find_package(flashjit): installs the library, public headers and
# an exported target flashjit::flashjit.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)
install(TARGETS flashjit EXPORT flashjitTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(DIRECTORY compiler/include/flashjit runtime/include/flashjit
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT flashjitTargets NAMESPACE flashjit::
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/flashjit)
configure_package_config_file(cmake/flashjitConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/flashjitConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/flashjit)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/flashjitConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/flashjitConfig.cmake
  ${CMAKE_CURRENT_BINARY_DIR}/flashjitConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/flashjit)
