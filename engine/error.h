#pragma once
// One exception type for everything a researcher can get wrong or the numerics can break:
// the message says what happened, where, and what to do about it.
#include <fmt/format.h>

#include "engine/error_type.h"

namespace gs {

template <class... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace gs

// GS_CHECK(cond, "format", args...) throws gs::Error with the formatted message when cond is false.
#define GS_CHECK(cond, ...)      \
  do {                           \
    if (!(cond)) {               \
      ::gs::fail(__VA_ARGS__);   \
    }                            \
  } while (0)
