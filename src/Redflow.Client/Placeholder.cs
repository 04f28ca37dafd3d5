namespace Redflow; internal static class Placeholder {}
