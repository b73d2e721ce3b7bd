using System.Text;
using System.Text.RegularExpressions;

namespace Timbre.ControlPlane.Voices;

/// <summary>Voice names as people write them, and the slug ids that name folders.</summary>
public static partial class VoiceNames
{
    public const int MaxNameLength = 64;

    /// <summary>Null when the name is acceptable, else what to change.</summary>
    public static string? Validate(string? name)
    {
        if (string.IsNullOrWhiteSpace(name))
        {
            return "name is required: give the voice a name such as \"Ada\".";
        }

        if (name.Length > MaxNameLength)
        {
            return $"name is {name.Length} characters long; use at most {MaxNameLength}.";
        }

        if (!AllowedName().IsMatch(name))
        {
            return "name may contain only letters, digits, spaces and - _ . ' ( ); no slashes, percent signs or control characters.";
        }

        if (name.Contains("..", StringComparison.Ordinal))
        {
            return "name may not contain \"..\".";
        }

        return Slug(name).Length == 0 ? "name needs at least one letter or digit." : null;
    }

    /// <summary>Lower-case ASCII letters, digits and single hyphens; accents are folded.</summary>
    public static string Slug(string name)
    {
        var folded = name.Normalize(NormalizationForm.FormD);
        var sb = new StringBuilder(folded.Length);
        foreach (var c in folded)
        {
            if (char.IsAsciiLetterOrDigit(c))
            {
                sb.Append(char.ToLowerInvariant(c));
            }
            else if (char.GetUnicodeCategory(c) != System.Globalization.UnicodeCategory.NonSpacingMark && sb.Length > 0 && sb[^1] != '-')
            {
                sb.Append('-');
            }
        }

        return sb.ToString().Trim('-');
    }

    /// <summary>True for strings that could be an id: anything else never reaches the file system.</summary>
    public static bool IsValidId(string id) => ValidId().IsMatch(id);

    [GeneratedRegex(@"^[\p{L}\p{N} _\-.'()]+$")]
    private static partial Regex AllowedName();

    [GeneratedRegex("^[a-z0-9](?:[a-z0-9-]{0,78}[a-z0-9])?$")]
    private static partial Regex ValidId();
}
