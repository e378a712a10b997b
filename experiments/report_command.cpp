#include "experiments/report_command.h"

#include <cstdlib>
#include <fstream>
#include <random>

#include <sys/wait.h>

#include <fmt/format.h>

#include "engine/error.h"
#include "engine/io/files.h"
#include "experiments/onsets_table.h"
#include "experiments/replicates.h"
#include "experiments/report.h"

namespace gs::experiments {

namespace fs = std::filesystem;

const char* report_figures_script() {
  static const char* text =
#include "report_figures.inc"
      ;
  return text;
}

namespace {

// Runs drawn side by side in comparison.png at most (MAX_COLUMNS in tools/report_figures.py);
// onsets.png takes any number.
constexpr std::size_t max_side_by_side = 8;

std::string shell_quote(const std::string& s) {
  std::string q(1, '\'');
  for (char c : s) {
    if (c == '\'') q.append("'\\''");
    else q.push_back(c);
  }
  q.push_back('\'');
  return q;
}

// Debian's interpreter first: a python3 earlier on PATH (pyenv, conda) often lacks its packages.
std::string python_interpreter() {
  if (const char* env = std::getenv("GROKSCOPE_PYTHON"); env && *env) return env;
  if (fs::exists("/usr/bin/python3")) return "/usr/bin/python3";
  return "python3";
}

// Where the side-by-side figure goes by default: the runs' deepest common folder, or the current
// one when they share nothing below the root.
fs::path common_parent(const std::vector<fs::path>& runs) {
  fs::path parent = fs::absolute(runs.front()).lexically_normal().parent_path();
  for (const auto& r : runs) {
    const fs::path p = fs::absolute(r).lexically_normal();
    while (!parent.empty() && parent != parent.root_path() &&
           std::mismatch(parent.begin(), parent.end(), p.begin(), p.end()).first != parent.end())
      parent = parent.parent_path();
  }
  return parent.empty() || parent == parent.root_path() ? fs::current_path() : parent;
}

// Draws every figure; returns false (having said why) when they could not be drawn.
bool draw_figures(const std::vector<RunReport>& runs, const fs::path& out) {
  std::random_device rd;
  const fs::path script = fs::temp_directory_path() / fmt::format("grokscope-report-{}-{}.py", rd(), rd());
  {
    std::ofstream f(script);
    f << report_figures_script();
    if (!f.good()) {
      fmt::print(stderr, "grokscope report: cannot write the figure script to {}; figures skipped\n", script.string());
      return false;
    }
  }
  std::string command = shell_quote(python_interpreter()) + " " + shell_quote(script.string());
  for (const auto& r : runs) command.append(" ").append(shell_quote(r.dir.string()));
  if (runs.size() > 1) command.append(" --out ").append(shell_quote(out.string()));
  std::fflush(stdout);
  const int status = std::system(command.c_str());
  std::error_code ec;
  fs::remove(script, ec);
  if (status == 0) return true;
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (code == 3)
    fmt::print(stderr, "grokscope report: figures skipped: {} has no matplotlib; tools/setup.sh installs "
                       "python3-matplotlib (or set GROKSCOPE_PYTHON to an interpreter that has it)\n",
               python_interpreter());
  else
    fmt::print(stderr, "grokscope report: the figure script failed (exit {}); summaries are written, figures "
                       "may be incomplete\n", code);
  return false;
}

}  // namespace

int run_report_command(const ReportCommand& cmd) {
  GS_CHECK(!cmd.runs.empty(), "report: give at least one run directory");
  std::vector<RunReport> reports;
  bool all_read = true;
  for (const auto& dir : cmd.runs) {
    try {
      reports.push_back(analyze_run(dir));
    } catch (const Error& e) {
      fmt::print(stderr, "grokscope report: {} not reported: {}\n", dir.string(), e.what());
      all_read = false;
    }
  }
  if (reports.empty()) return 1;

  nlohmann::ordered_json all = nlohmann::ordered_json::array();
  for (const auto& r : reports) {
    const auto j = report_json(r);
    // Written whole or not at all: a good summary.json is never replaced by a torn one.
    io::write_file_atomically(r.dir / "summary.json", j.dump(2) + "\n");
    all.push_back(j);
  }
  if (cmd.json) {
    fmt::print("{}\n", all.dump(2));
  } else {
    fmt::print("{}", report_table(reports));
    for (const auto& r : reports)
      for (const auto& note : r.notes) fmt::print("  note, {}: {}\n", r.dir.string(), note);
  }
  for (const auto& w : comparability_warnings(reports)) fmt::print(stderr, "grokscope report: warning: {}\n", w);
  // Runs of one condition with different seeds: the medians and ranges of their onsets.
  const std::vector<ReplicateGroup> replicates = replicate_groups(reports);
  if (!cmd.json && !replicates.empty()) fmt::print("\n{}", replicates_table(replicates));

  // Several runs: their onsets as one CSV, with the recipe keys they differ in, beside the figures.
  const fs::path out = cmd.out.empty() ? common_parent(cmd.runs) : cmd.out;
  if (reports.size() > 1) {
    io::make_directories(out, "choose another --out");  // the figures go there too
    io::write_file_atomically(out / "onsets.csv", onsets_csv(reports));
    if (!replicates.empty()) io::write_file_atomically(out / "replicates.csv", replicates_csv(replicates));
    if (!cmd.json)
      fmt::print("table: {}/onsets.csv{}\n", out.string(),
                 replicates.empty() ? std::string() : fmt::format(", replicates: {}/replicates.csv", out.string()));
  }
  if (cmd.figures) {
    if (draw_figures(reports, out) && !cmd.json) {
      fmt::print("figures: {}/figures/", reports.front().dir.string());
      if (reports.size() > 1) {
        fmt::print(" (and each run's); all runs' onsets: {}/onsets.png", out.string());
        if (reports.size() <= max_side_by_side) fmt::print(", side by side: {}/comparison.png", out.string());
        if (!replicates.empty()) fmt::print(", replicates: {}/replicates.png", out.string());
      }
      fmt::print("\n");
    }
  }
  return all_read ? 0 : 1;
}

}  // namespace gs::experiments
