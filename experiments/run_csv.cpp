#include "experiments/run_csv.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "engine/error.h"

namespace gs::experiments {

namespace fs = std::filesystem;

std::size_t CsvTable::column(const std::string& name) const {
  for (std::size_t i = 0; i < header.size(); ++i)
    if (header[i] == name) return i;
  fail("{}: no column '{}' in its header; is it a file written by grokscope train?", file.string(), name);
}

bool CsvTable::has(const std::string& name) const {
  for (const auto& h : header)
    if (h == name) return true;
  return false;
}

double CsvTable::number(std::size_t row, std::size_t col) const {
  const std::string& text = rows[row][col];
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  GS_CHECK(!text.empty() && end == text.c_str() + text.size(), "{}:{}: column '{}' holds '{}', not a number",
           file.string(), line_of_row[row], header[col], text);
  return v;
}

namespace {
std::vector<std::string> split(const std::string& line) {
  std::vector<std::string> fields;
  std::stringstream in(line);
  std::string f;
  while (std::getline(in, f, ',')) fields.push_back(f);
  if (!line.empty() && line.back() == ',') fields.emplace_back();
  return fields;
}

}  // namespace

CsvTable read_csv(const fs::path& file) {
  CsvTable t;
  t.file = file;
  std::ifstream in(file);
  GS_CHECK(in.good(), "{}: cannot open", file.string());
  std::string line;
  GS_CHECK(std::getline(in, line) && !line.empty(), "{}: the file is empty; has the run logged anything yet?",
           file.string());
  t.header = split(line);
  std::size_t line_no = 1;
  std::vector<std::string> pending;  // a short row is an error unless it is the last (a run mid-write)
  std::size_t pending_line = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!pending.empty())
      fail("{}:{}: {} fields where the header has {}; the file is damaged, rerun or --resume the run",
           file.string(), pending_line, pending.size(), t.header.size());
    if (line.empty()) continue;
    auto fields = split(line);
    if (fields.size() != t.header.size()) {
      pending = std::move(fields);
      pending_line = line_no;
      continue;
    }
    t.rows.push_back(std::move(fields));
    t.line_of_row.push_back(line_no);
  }
  if (!pending.empty())
    t.notes.push_back(fmt::format("{}:{}: last line is incomplete (a run still writing?); left out",
                                  file.filename().string(), pending_line));
  return t;
}

Series series_of(const CsvTable& t, const std::string& value_col, const std::string& key_col, const std::string& key) {
  Series s;
  const std::size_t step_c = t.column("step"), value_c = t.column(value_col);
  const std::size_t key_c = key_col.empty() ? 0 : t.column(key_col);
  for (std::size_t r = 0; r < t.rows.size(); ++r) {
    if (!key_col.empty() && t.rows[r][key_c] != key) continue;
    const double step = t.number(r, step_c), v = t.number(r, value_c);
    if (!std::isfinite(v)) continue;
    GS_CHECK(s.empty() || step > s.step.back(), "{}:{}: step {} does not come after step {}", t.file.string(),
             t.line_of_row[r], step, s.empty() ? 0.0 : s.step.back());
    s.step.push_back(step);
    s.value.push_back(v);
  }
  return s;
}

std::vector<std::string> distinct(const CsvTable& t, const std::string& col) {
  std::vector<std::string> out;
  const std::size_t c = t.column(col);
  for (const auto& row : t.rows)
    if (std::find(out.begin(), out.end(), row[c]) == out.end()) out.push_back(row[c]);
  return out;
}

}  // namespace gs::experiments
