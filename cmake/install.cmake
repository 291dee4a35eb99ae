# Install rules: `cmake --install build` (prefix /usr/local unless -DCMAKE_INSTALL_PREFIX=...),
# `DESTDIR=/tmp/stage cmake --install build` stages the same tree under /tmp/stage.
#   sbin/ublk-compose, the man pages ublk-compose(8) and ublk-compose.conf(5) (scdoc sources in
#   man/), the bash completion, the example configs (conf/*.conf) and the docs under
#   share/doc/ublk-compose, an empty /etc/ublk-compose, and the systemd units (systemd/*.service,
#   *.timer) and udev rules (udev/*.rules) that exist in the tree.
# With the prefix /usr the units, rules and completion go where pkg-config's systemd, udev and
# bash-completion say (Debian 12: /lib/systemd/system, /lib/udev/rules.d,
# /usr/share/bash-completion/completions); with any other prefix under it (systemd, udev and
# bash-completion all read /usr/local/lib/systemd/system, /usr/local/lib/udev/rules.d and
# /usr/local/share/bash-completion/completions). UC_SYSTEMD_UNITDIR, UC_UDEV_RULESDIR and
# UC_BASH_COMPLETIONDIR override each.
include(GNUInstallDirs)

# uc_pkg_dir(VAR MODULE PKGVAR FALLBACK [SUFFIX]): VAR, unless given with -D: MODULE's pkg-config
# variable PKGVAR (plus SUFFIX) for the prefix /usr, else (or without MODULE) FALLBACK
function(uc_pkg_dir var module pkgvar fallback)
  if(DEFINED ${var})
    return()
  endif()
  set(dir "${fallback}")
  if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
    execute_process(COMMAND ${PKG_CONFIG_EXECUTABLE} --variable=${pkgvar} ${module}
      OUTPUT_VARIABLE out OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE rc ERROR_QUIET)
    if(rc EQUAL 0 AND out)
      set(dir "${out}${ARGN}")
    endif()
  endif()
  set(${var} "${dir}" PARENT_SCOPE)
endfunction()

set(UC_LIBDIR_ROOT "${CMAKE_INSTALL_PREFIX}/lib")	# systemd and udev use lib/, not lib64/
uc_pkg_dir(UC_SYSTEMD_UNITDIR systemd systemdsystemunitdir "${UC_LIBDIR_ROOT}/systemd/system")
uc_pkg_dir(UC_UDEV_RULESDIR udev udevdir "${UC_LIBDIR_ROOT}/udev/rules.d" "/rules.d")
uc_pkg_dir(UC_BASH_COMPLETIONDIR bash-completion completionsdir
  "${CMAKE_INSTALL_FULL_DATADIR}/bash-completion/completions")

install(TARGETS ublk-compose RUNTIME DESTINATION ${CMAKE_INSTALL_SBINDIR})

option(UC_MAN "Build and install the man pages (needs scdoc)" ON)
if(UC_MAN)
  find_program(SCDOC scdoc)
  if(NOT SCDOC)
    message(FATAL_ERROR "scdoc not found (apt-get install scdoc), or configure with -DUC_MAN=OFF")
  endif()
  set(pages)
  foreach(page ublk-compose.8 ublk-compose.conf.5)
    set(out ${CMAKE_BINARY_DIR}/man/${page})
    add_custom_command(OUTPUT ${out}
      COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/man
      COMMAND sh -c "\"$0\" < \"$1\" > \"$2\"" ${SCDOC} ${CMAKE_SOURCE_DIR}/man/${page}.scd ${out}
      DEPENDS ${CMAKE_SOURCE_DIR}/man/${page}.scd VERBATIM)
    string(REGEX REPLACE ".*\\." "" section ${page})
    install(FILES ${out} DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section})
    list(APPEND pages ${out})
  endforeach()
  add_custom_target(man ALL DEPENDS ${pages})
endif()

install(FILES ${CMAKE_SOURCE_DIR}/completion/ublk-compose DESTINATION ${UC_BASH_COMPLETIONDIR})

file(GLOB UC_EXAMPLES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/conf/*.conf)
install(FILES ${UC_EXAMPLES} DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)
install(FILES ${CMAKE_SOURCE_DIR}/README.md ${CMAKE_SOURCE_DIR}/docs/mirror-format.md
  ${CMAKE_SOURCE_DIR}/docs/compress-format.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(DIRECTORY DESTINATION ${CMAKE_INSTALL_FULL_SYSCONFDIR}/ublk-compose)

# Units and rules name /usr/sbin/ublk-compose: installed copies name the binary where this
# prefix puts it. Whatever of them exists is installed (the glob re-runs on a new file).
file(GLOB UC_UNITS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/systemd/*.service
  ${CMAKE_SOURCE_DIR}/systemd/*.timer)
file(GLOB UC_UDEV_RULES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/udev/*.rules)
foreach(src ${UC_UNITS} ${UC_UDEV_RULES})
  get_filename_component(name ${src} NAME)
  get_filename_component(dir ${src} DIRECTORY)
  get_filename_component(dir ${dir} NAME)
  file(READ ${src} text)
  string(REPLACE "/usr/sbin/ublk-compose" "${CMAKE_INSTALL_FULL_SBINDIR}/ublk-compose" text "${text}")
  file(WRITE ${CMAKE_BINARY_DIR}/${dir}/${name} "${text}")
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${src})
  if(dir STREQUAL "systemd")
    install(FILES ${CMAKE_BINARY_DIR}/${dir}/${name} DESTINATION ${UC_SYSTEMD_UNITDIR})
  else()
    install(FILES ${CMAKE_BINARY_DIR}/${dir}/${name} DESTINATION ${UC_UDEV_RULESDIR})
  endif()
endforeach()

# for tests/install-tree.sh: where each part goes
file(WRITE ${CMAKE_BINARY_DIR}/install-dirs.txt
  "prefix ${CMAKE_INSTALL_PREFIX}\n"
  "sbindir ${CMAKE_INSTALL_FULL_SBINDIR}\n"
  "mandir ${CMAKE_INSTALL_FULL_MANDIR}\n"
  "docdir ${CMAKE_INSTALL_FULL_DOCDIR}\n"
  "sysconfdir ${CMAKE_INSTALL_FULL_SYSCONFDIR}\n"
  "unitdir ${UC_SYSTEMD_UNITDIR}\n"
  "udevrulesdir ${UC_UDEV_RULESDIR}\n"
  "completionsdir ${UC_BASH_COMPLETIONDIR}\n")
message(STATUS "install: ${CMAKE_INSTALL_FULL_SBINDIR}, units ${UC_SYSTEMD_UNITDIR}, "
  "udev rules ${UC_UDEV_RULESDIR}, bash completion ${UC_BASH_COMPLETIONDIR}")
