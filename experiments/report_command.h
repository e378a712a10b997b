#pragma once
// `grokscope report RUN_DIR [RUN_DIR ...]`: the table and verdicts on stdout, summary.json in each
// run directory, and the figures drawn by tools/report_figures.py (compiled in).
#include <filesystem>
#include <string>
#include <vector>

namespace gs::experiments {

struct ReportCommand {
  std::vector<std::filesystem::path> runs;
  std::filesystem::path out;  // where the side-by-side figure goes; default: the runs' common parent
  bool figures = true;
  bool json = false;          // print every summary as one JSON array instead of the table
};

// 0 when every run was reported (figures skipped for a missing matplotlib still count as
// reported, with a warning); 1 when some run could not be read, after reporting the others.
int run_report_command(const ReportCommand& cmd);

// The figure script's text, as compiled in.
const char* report_figures_script();

}  // namespace gs::experiments
