from rlm_engine.engine.parsing import parse_reply, split_instruction


def test_repl_and_python_fences_are_cells_other_languages_are_not() -> None:
    reply = (
        "Let me look.\n```repl\nprint(len(context))\n```\nand\n```python\nx = 1\n```\n"
        "```bash\nls\n```\n```\njust text\n```"
    )
    parsed = parse_reply(reply)
    assert [c.code for c in parsed.cells] == ["print(len(context))", "x = 1"]
    assert not parsed.has_final


def test_leading_instruction_is_split_from_code() -> None:
    cell = split_instruction("'''count the errors per host'''\nprint(1)\n")
    assert cell.instruction == "count the errors per host"
    assert cell.code == "print(1)"
    assert split_instruction('"""x"""\ny = 2').instruction == "x"
    assert split_instruction("y = '''not leading'''").instruction is None


def test_final_in_plain_text() -> None:
    assert parse_reply("Done.\nFINAL(42)").final_answer == "42"
    assert parse_reply('FINAL("The answer is (a), not (b)")').final_answer == (
        "The answer is (a), not (b)"
    )
    assert parse_reply("FINAL(nested (parens) work)").final_answer == "nested (parens) work"


def test_final_inside_a_fence_is_code_not_an_answer() -> None:
    parsed = parse_reply("```repl\nFINAL(answer)\n```")
    assert not parsed.has_final
    assert parsed.cells[0].code == "FINAL(answer)"


def test_final_var_in_text() -> None:
    parsed = parse_reply("All built.\nFINAL_VAR(result)")
    assert parsed.final_var == "result"
    assert parse_reply("FINAL_VAR('pairs')").final_var == "pairs"


def test_final_mentioned_mid_sentence_is_not_an_answer() -> None:
    assert not parse_reply("I will call FINAL(x) once I know x.").has_final


def test_unbalanced_final_takes_the_rest() -> None:
    assert parse_reply("FINAL(unclosed answer").final_answer == "unclosed answer"


def test_empty_code_blocks_are_dropped() -> None:
    assert parse_reply("```repl\n\n```").cells == ()
