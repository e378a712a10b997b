#pragma once
// The CSV a probe appends to, one file per probe in the run directory. Opening it at step s keeps
// the rows of earlier steps (a resumed run) and drops later ones (a run that crashed after them).
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace gs::experiments {

std::ofstream open_probe_csv(const std::filesystem::path& file, const std::string& header, std::int64_t step);
// Flushes a log's rows and fails, naming the file, if they could not all be written (a full
// disk): a run must not go on to "finished" with rows missing.
void flush_checked(std::ofstream& out, const std::filesystem::path& file);
// The distinct steps the file holds rows for, ascending (none when it does not exist).
std::vector<std::int64_t> logged_steps(const std::filesystem::path& file);

}  // namespace gs::experiments
