//! What a terminal shows, from the bytes written to it.
//!
//! bash's line editor (readline) echoes what is typed, and when a line reaches the
//! right margin it redraws it with cursor motions (`" \r"`, `ESC [A`, `ESC [C`,
//! `ESC [K`) rather than plain text. So the bytes are not the text: they are played on
//! a small emulation of an xterm of a given width, and read back as *logical* lines,
//! a line that the margin wrapped being joined again, as a terminal's copy and paste
//! does. Only what shells and the book's programs use is emulated: printable text,
//! `\r`, `\n`, `\b`, `\t`, cursor motions, erasing in a line, and the prompt markers
//! (OSC sequences, which a terminal does not display).

/// One row of the screen.
#[derive(Debug, Clone, Default)]
struct Row {
    cells: Vec<char>,
    /// The text went on past the right margin onto the next row.
    wrapped: bool,
}

/// An xterm of `width` columns and unlimited height.
#[derive(Debug)]
pub struct Screen {
    width: usize,
    rows: Vec<Row>,
    row: usize,
    col: usize,
    /// A character was written in the last column: the next one starts a new row
    /// (xterm's "pending wrap").
    pending_wrap: bool,
    parser: Parser,
    utf8: Vec<u8>,
}

#[derive(Debug, Default)]
enum Parser {
    #[default]
    Text,
    Escape,
    Csi(String),
    Osc,
    OscEscape,
}

impl Screen {
    pub fn new(width: usize) -> Self {
        Self {
            width: width.max(2),
            rows: vec![Row::default()],
            row: 0,
            col: 0,
            pending_wrap: false,
            parser: Parser::Text,
            utf8: Vec::new(),
        }
    }

    /// Plays `bytes` on the screen.
    pub fn feed(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.byte(byte);
        }
    }

    fn byte(&mut self, byte: u8) {
        match std::mem::take(&mut self.parser) {
            Parser::Text => self.text(byte),
            Parser::Escape => {
                self.parser = match byte {
                    b'[' => Parser::Csi(String::new()),
                    b']' => Parser::Osc,
                    // Other escapes (charset selection, keypad modes) change nothing
                    // this emulation shows; their one-byte argument, if any, is text
                    // that a terminal would not print either, which is rare enough.
                    _ => Parser::Text,
                }
            }
            Parser::Csi(mut params) => {
                if (0x40..=0x7e).contains(&byte) {
                    self.csi(&params, byte);
                } else {
                    params.push(byte as char);
                    self.parser = Parser::Csi(params);
                }
            }
            Parser::Osc => {
                self.parser = match byte {
                    0x07 => Parser::Text,
                    0x1b => Parser::OscEscape,
                    _ => Parser::Osc,
                }
            }
            Parser::OscEscape => self.parser = Parser::Text,
        }
    }

    fn text(&mut self, byte: u8) {
        match byte {
            0x1b => self.parser = Parser::Escape,
            b'\r' => {
                self.col = 0;
                self.pending_wrap = false;
            }
            b'\n' => {
                self.down();
                self.pending_wrap = false;
            }
            0x08 => {
                self.col = self.col.saturating_sub(1);
                self.pending_wrap = false;
            }
            b'\t' => self.col = ((self.col / 8 + 1) * 8).min(self.width - 1),
            0x00..=0x1f | 0x7f => {}
            _ => {
                self.utf8.push(byte);
                match std::str::from_utf8(&self.utf8) {
                    Ok(text) => {
                        let c = text.chars().next().expect("one character");
                        self.utf8.clear();
                        self.put(c);
                    }
                    Err(err) if err.error_len().is_some() || self.utf8.len() >= 4 => {
                        self.utf8.clear();
                        self.put(char::REPLACEMENT_CHARACTER);
                    }
                    Err(_) => {}
                }
            }
        }
    }

    fn put(&mut self, c: char) {
        if self.pending_wrap {
            self.rows[self.row].wrapped = true;
            self.down();
            self.col = 0;
            self.pending_wrap = false;
        }
        let cells = &mut self.rows[self.row].cells;
        if cells.len() <= self.col {
            cells.resize(self.col + 1, ' ');
        }
        cells[self.col] = c;
        if self.col + 1 == self.width {
            // Whether the row goes on is up to the next character.
            self.rows[self.row].wrapped = false;
            self.pending_wrap = true;
        } else {
            self.col += 1;
        }
    }

    fn down(&mut self) {
        self.row += 1;
        if self.row == self.rows.len() {
            self.rows.push(Row::default());
        }
    }

    fn csi(&mut self, params: &str, command: u8) {
        let n = params
            .trim_start_matches('?')
            .split(';')
            .next()
            .and_then(|p| p.parse::<usize>().ok());
        let count = n.unwrap_or(1).max(1);
        match command {
            b'A' => self.row = self.row.saturating_sub(count),
            b'B' => {
                for _ in 0..count {
                    self.down();
                }
            }
            b'C' => self.col = (self.col + count).min(self.width - 1),
            b'D' => self.col = self.col.saturating_sub(count),
            b'G' => self.col = (count - 1).min(self.width - 1),
            b'K' => {
                let cells = &mut self.rows[self.row].cells;
                match n.unwrap_or(0) {
                    0 => cells.truncate(self.col),
                    1 => cells.iter_mut().take(self.col + 1).for_each(|c| *c = ' '),
                    _ => cells.clear(),
                }
            }
            b'J' if n.unwrap_or(0) == 0 => {
                self.rows[self.row].cells.truncate(self.col);
                self.rows.truncate(self.row + 1);
            }
            // Colours, modes, scrolling regions: nothing a transcript shows.
            _ => {}
        }
        if matches!(command, b'A' | b'B' | b'C' | b'D' | b'G') {
            self.pending_wrap = false;
        }
    }

    /// The logical lines shown so far, without trailing blanks; the row the cursor
    /// waits on is left out when nothing was written on it.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        let mut current = String::new();
        let last = if self.rows[self.row].cells.is_empty() && self.row + 1 == self.rows.len() {
            self.row
        } else {
            self.rows.len()
        };
        for row in &self.rows[..last] {
            current.extend(&row.cells);
            if !row.wrapped {
                lines.push(current.trim_end().to_owned());
                current.clear();
            }
        }
        if !current.is_empty() {
            lines.push(current.trim_end().to_owned());
        }
        lines
    }
}

/// The lines `bytes` show on a fresh screen of `width` columns.
pub fn render(bytes: &[u8], width: usize) -> Vec<String> {
    let mut screen = Screen::new(width);
    screen.feed(bytes);
    screen.lines()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines() {
        assert_eq!(render(b"# ls\r\na  b\r\n", 80), ["# ls", "a  b"]);
        assert_eq!(render(b"x\r\n\r\ny\r\n", 80), ["x", "", "y"]);
    }

    #[test]
    fn a_long_line_wraps_and_is_joined() {
        let text = "a".repeat(130);
        assert_eq!(
            render(format!("{text}\r\nb\r\n").as_bytes(), 80),
            [text, "b".into()]
        );
        // Exactly the width: the pending wrap is cancelled by the carriage return.
        let text = "c".repeat(80);
        assert_eq!(
            render(format!("{text}\r\nd\r\n").as_bytes(), 80),
            [text, "d".into()]
        );
    }

    #[test]
    fn readline_redraw_at_the_margin() {
        // What bash printed for `echo a…a` (80 columns with the prompt): the line, a
        // space to force the wrap, then back up to erase it and print the last letter.
        let typed = format!("# echo {}", "a".repeat(73));
        let mut bytes = typed.as_bytes()[..typed.len() - 1].to_vec();
        bytes.extend_from_slice(b"a \r\x1b[A");
        bytes.extend(std::iter::repeat_n(b"\x1b[C".as_slice(), 79).flatten());
        bytes.extend_from_slice(b"\x1b[Ka\r\n");
        bytes.extend_from_slice(format!("{}\r\n", "a".repeat(73)).as_bytes());
        assert_eq!(render(&bytes, 80), [typed, "a".repeat(73)]);
    }

    #[test]
    fn markers_and_colours_are_invisible() {
        assert_eq!(
            render(b"\x1b]9;keel-1\x07# \x1b[1mhi\x1b[0m\r\n", 80),
            ["# hi"]
        );
    }

    #[test]
    fn tabs_and_utf8() {
        assert_eq!(
            render("real\t0m1.000s\r\n└─x\r\n".as_bytes(), 80),
            ["real    0m1.000s", "└─x"]
        );
    }
}
