"""The inbox's Textual CSS (kept in Python so it ships without package-data configuration).
One screen that fits 80×24: header, filter line, table, the detail pane beside the message
thread and its message box, status bar, footer."""

CSS = """
#header {
    height: 1;
    background: $primary-background;
    padding: 0 1;
}

#filters {
    height: 1;
    padding: 0 1;
}

#filter-label {
    width: auto;
}

#search {
    border: none;
    height: 1;
    padding: 0;
    width: 1fr;
    background: $surface;
}

#search:focus {
    background: $boost;
}

#requests {
    height: 1fr;
}

#lower {
    height: 40%;
    min-height: 10;
    border-top: hkey $primary;
}

#detail-scroll {
    width: 1fr;
    padding: 0 1;
}

#thread-box {
    width: 1fr;
    border-left: vkey $primary;
}

#thread-scroll {
    height: 1fr;
    padding: 0 1;
}

#reply {
    border: none;
    height: 1;
    padding: 0 1;
    background: $surface;
}

#reply:focus {
    background: $boost;
}

#status, #wait-status {
    height: 1;
    padding: 0 1;
    background: $panel;
}

AnswerScreen, LoginScreen, HelpScreen {
    align: center middle;
}

#answer {
    width: 72;
    height: auto;
    max-height: 100%;
    padding: 0 1;
    background: $surface;
    border: round $success;
}

#answer.rejected {
    border: round $error;
}

#templates {
    height: auto;
    max-height: 6;
}

#answer-warning, #answer-status, #login-status {
    height: auto;
}

#answer-buttons {
    height: auto;
    align-horizontal: right;
}

#answer-buttons Button {
    margin-left: 1;
}

#login {
    width: 60;
    height: auto;
    padding: 1 2;
    background: $surface;
    border: round $primary;
}

#help {
    width: 76;
    height: auto;
    padding: 1 2;
    background: $surface;
    border: round $primary;
}
"""
