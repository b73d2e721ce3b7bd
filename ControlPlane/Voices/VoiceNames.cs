using System.Text;
using System.Text.RegularExpressions;
using AnyAscii;

namespace Timbre.ControlPlane.Voices;

/// <summary>Voice names as people write them, in any script, and the ASCII slug ids that name folders.</summary>
/// <remarks>
/// A name is kept as written, in Unicode normal form C, so the composed "Café" and the decomposed
/// spelling macOS keyboards often send are the same name. Its id is a transliteration to ASCII
/// (AnyAscii: "Café" → cafe, "Ольга" → olga, "Ελένη" → eleni, "日本語" → ribenyu), lower-cased, with
/// anything else folded to single hyphens: ids stay URL-safe, typeable on any keyboard, and can never
/// name a path outside the library.
/// </remarks>
public static partial class VoiceNames
{
    public const int MaxNameLength = 64;

    /// <summary>The name as Timbre stores and compares it: trimmed, in normal form C.</summary>
    public static string Canonical(string name) => name.Trim().Normalize(NormalizationForm.FormC);

    /// <summary>Null when the name is acceptable, else what to change.</summary>
    public static string? Validate(string? name)
    {
        if (string.IsNullOrWhiteSpace(name))
        {
            return "name is required: give the voice a name such as \"Ada\".";
        }

        if (!IsWellFormed(name))
        {
            return "name is not valid Unicode text (it has a lone surrogate); send it as UTF-8.";
        }

        name = Canonical(name);
        if (name.Length > MaxNameLength)
        {
            return $"name is {name.Length} characters long; use at most {MaxNameLength}.";
        }

        if (!AllowedName().IsMatch(name))
        {
            return "name may contain only letters (any script), digits, spaces and - _ . ' ( ); no slashes, percent signs, symbols or control characters.";
        }

        if (name.Contains("..", StringComparison.Ordinal))
        {
            return "name may not contain \"..\".";
        }

        return Slug(name).Length == 0 ? "name needs at least one letter or digit." : null;
    }

    /// <summary>Lower-case ASCII letters, digits and single hyphens, transliterated from any script.</summary>
    public static string Slug(string name)
    {
        // Apostrophes join: "O'Brien" → obrien, and AnyAscii's "Ol'ga" (soft sign) → olga.
        var ascii = Canonical(name).Transliterate().Replace("'", "", StringComparison.Ordinal);
        var sb = new StringBuilder(ascii.Length);
        foreach (var c in ascii)
        {
            if (char.IsAsciiLetterOrDigit(c))
            {
                sb.Append(char.ToLowerInvariant(c));
            }
            else if (sb.Length > 0 && sb[^1] != '-')
            {
                sb.Append('-');
            }
        }

        var slug = sb.ToString().Trim('-');
        return slug.Length <= MaxIdLength ? slug : slug[..MaxIdLength].TrimEnd('-');
    }

    /// <summary>True for strings that could be an id: anything else never reaches the file system.</summary>
    public static bool IsValidId(string id) => ValidId().IsMatch(id);

    private const int MaxIdLength = 80;

    private static bool IsWellFormed(string s)
    {
        for (var i = 0; i < s.Length; i++)
        {
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
            {
                i++;
            }
            else if (char.IsSurrogate(s[i]))
            {
                return false;
            }
        }

        return true;
    }

    // Letters and the marks that belong to them (Devanagari vowel signs, Hangul jamo, …), digits, and a few separators.
    [GeneratedRegex(@"^[\p{L}\p{M}\p{N} _\-.'()]+$")]
    private static partial Regex AllowedName();

    [GeneratedRegex("^[a-z0-9](?:[a-z0-9-]{0,78}[a-z0-9])?$")]
    private static partial Regex ValidId();
}
